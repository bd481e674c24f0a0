// KioskCore
