import Crypto
import Foundation

/// SHA-256 of bytes as 64 lowercase hex digits (the form used on the wire and in the outbox).
public func sha256Hex<D: DataProtocol>(_ data: D) -> String {
    hexString(SHA256.hash(data: data))
}

/// Lowercase hex of a digest's bytes, written as ASCII in one allocation (a `Character` at a time
/// cost more than the hash itself on the sync path, which checks every payload it sends).
func hexString<S: Sequence>(_ sequence: S) -> String where S.Element == UInt8 {
    let digits: StaticString = "0123456789abcdef"
    let bytes = Array(sequence)
    return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
        var i = 0
        digits.withUTF8Buffer { hex in
            for b in bytes {
                buffer[i] = hex[Int(b >> 4)]
                buffer[i + 1] = hex[Int(b & 0x0f)]
                i += 2
            }
        }
        return i
    }
}
