import Crypto
import Foundation

/// SHA-256 of bytes as 64 lowercase hex digits (the form used on the wire and in the outbox).
public func sha256Hex<D: DataProtocol>(_ data: D) -> String {
    hexString(SHA256.hash(data: data))
}

/// Lowercase hex of a digest's bytes, written as ASCII in one allocation (a `Character` at a time
/// cost more than the hash itself on the sync path, which checks every payload it sends).
func hexString<S: Sequence>(_ sequence: S) -> String where S.Element == UInt8 {
    let bytes = Array(sequence)
    return String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
        var i = 0
        for b in bytes {
            buffer[i] = hexDigit(b >> 4)
            buffer[i + 1] = hexDigit(b & 0x0f)
            i += 2
        }
        return i
    }
}

/// The lowercase ASCII hex digit of a nibble (0...15), shared by digests and JSON `\u00XX` escapes.
@inline(__always)
func hexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
}
