import KioskCore

extension TerminalPayment {
    /// The payment record stored with a credit application.
    public func payment() -> Payment {
        Payment(transactionRef: transactionRef, amountMinor: amountMinor, currency: currency, maskedPAN: maskedPAN, terminalToken: token, approvalCode: approvalCode)
    }
}
