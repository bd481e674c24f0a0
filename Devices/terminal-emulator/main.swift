print("terminal-emulator")
