import KioskAgent
