// KioskAgent
