// KioskCentral
