print("stdin")
