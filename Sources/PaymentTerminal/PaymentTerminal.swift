// PaymentTerminal: the USB payment terminal link (protocol codec and libusb transport).
