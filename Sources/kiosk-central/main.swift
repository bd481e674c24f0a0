print("central")
