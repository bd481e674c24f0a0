import Foundation

extension CreditApplication {
    /// A realistic application for demos, tests and benchmarks (masked PAN, dev consent text).
    public static func sample(
        id: String = ApplicationID.make(), deviceID: String = "kiosk-dev-0001", merchantID: String = "merchant-dev",
        amountMinor: Int64 = 129_900, now: Date = Date(), bootID: String = "00000000-0000-0000-0000-000000000000",
        monotonicNanos: UInt64 = 1_000_000_000
    ) -> CreditApplication {
        let ms = Int64(now.timeIntervalSince1970 * 1000)
        let shown = Timestamp(wallClockMillis: ms - 20_000, bootID: bootID, monotonicNanos: monotonicNanos &- 20_000_000_000)
        let confirmed = Timestamp(wallClockMillis: ms - 12_000, bootID: bootID, monotonicNanos: monotonicNanos &- 12_000_000_000)
        return CreditApplication(
            id: id, deviceID: deviceID, merchantID: merchantID,
            createdAt: Timestamp(wallClockMillis: ms, bootID: bootID, monotonicNanos: monotonicNanos),
            payment: Payment(transactionRef: "TX-\(id.suffix(12))", amountMinor: amountMinor, currency: "CNY",
                             maskedPAN: "622202******1234", terminalToken: "tok_\(id.prefix(8))", approvalCode: "A1B2C3"),
            authorization: Authorization(
                consentTextID: "instalment-consent", consentVersion: "2026.11", language: "zh-CN",
                consentSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                shownAt: shown, confirmedAt: confirmed, method: .terminalButton),
            liveness: LivenessResult(decision: .pass, score: 0.93, checks: [
                .init(name: "blink", value: 1, threshold: 1, passed: true),
                .init(name: "moire", value: 0.12, threshold: 0.4, passed: true),
            ])
        )
    }
}
