print("ünïcode")
