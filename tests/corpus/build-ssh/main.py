print("ssh")
