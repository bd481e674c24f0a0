print("vm-selfcheck")
