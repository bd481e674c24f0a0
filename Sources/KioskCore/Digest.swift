import Crypto
import Foundation

/// SHA-256 of bytes as 64 lowercase hex digits (the form used on the wire and in the outbox).
public func sha256Hex<D: DataProtocol>(_ data: D) -> String {
    let digest = SHA256.hash(data: data)
    var out = ""
    out.reserveCapacity(64)
    let hex: [Character] = Array("0123456789abcdef")
    for b in digest {
        out.append(hex[Int(b >> 4)])
        out.append(hex[Int(b & 0x0f)])
    }
    return out
}
