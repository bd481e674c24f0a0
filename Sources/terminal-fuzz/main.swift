print("terminal-fuzz")
