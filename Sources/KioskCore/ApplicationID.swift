import Foundation

/// Time-ordered unique identifiers (UUID version 7 layout, RFC 9562).
///
/// 48 bits of Unix milliseconds, then random bits: ids sort by creation time and are unique
/// without coordination, so they can serve as the idempotency key at central.
public enum ApplicationID {
    /// Makes a new id for the given wall-clock time.
    public static func make(now: Date = Date()) -> String {
        var rng = SystemRandomNumberGenerator()
        return make(millis: UInt64(max(0, now.timeIntervalSince1970 * 1000)), using: &rng)
    }

    /// Makes a new id from a millisecond timestamp and a random source.
    public static func make<R: RandomNumberGenerator>(millis: UInt64, using rng: inout R) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: millis >> (8 * (5 - UInt64(i)))) }
        let r1 = rng.next() as UInt64
        let r2 = rng.next() as UInt64
        for i in 0..<2 { bytes[6 + i] = UInt8(truncatingIfNeeded: r1 >> (8 * UInt64(i))) }
        for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: r2 >> (8 * UInt64(i))) }
        bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-" + String(c[20..<32])
    }

    /// Whether a string is acceptable as an application id on the wire: 1–64 of `[A-Za-z0-9._-]`.
    public static func isValid(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...64).contains(u.count) else { return false }
        return u.allSatisfy { b in
            (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) || b == 45 || b == 46 || b == 95
        }
    }
}
