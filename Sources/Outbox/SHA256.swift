import Foundation

/// A compact, dependency-free SHA-256 (FIPS 180-4) used to seal outbox payloads.
///
/// The Outbox target deliberately does not depend on swift-crypto; this type is internal so it
/// never clashes with `Crypto.SHA256` in modules that import both.
struct SHA256: Sendable {
    /// Size of a digest in bytes.
    static let digestByteCount = 32

    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private var state: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    /// Bytes of an incomplete block carried between `update` calls (always fewer than 64).
    private var pending: [UInt8] = []
    private var byteCount: UInt64 = 0

    /// Creates a hasher in the initial state.
    init() {
        pending.reserveCapacity(64)
    }

    /// Returns the SHA-256 digest of `data`.
    static func hash(_ data: some DataProtocol) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data)
        return hasher.finalize()
    }

    /// Returns the lowercase hexadecimal SHA-256 digest of `data`.
    static func hexDigest(_ data: some DataProtocol) -> String {
        hex(hash(data))
    }

    /// Lowercase hexadecimal rendering of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Feeds `data` (possibly split over several regions) into the hasher.
    mutating func update(_ data: some DataProtocol) {
        for region in data.regions {
            region.withUnsafeBytes { update(bytes: $0) }
        }
    }

    /// Feeds raw bytes into the hasher.
    mutating func update(bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        byteCount &+= UInt64(bytes.count)
        var offset = 0
        if !pending.isEmpty {
            let take = min(64 - pending.count, bytes.count)
            pending.append(contentsOf: bytes[0 ..< take])
            offset = take
            if pending.count == 64 {
                let block = pending
                block.withUnsafeBytes { compress(blocks: $0) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        let wholeBlockBytes = (bytes.count - offset) / 64 * 64
        if wholeBlockBytes > 0 {
            compress(blocks: UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + wholeBlockBytes]))
            offset += wholeBlockBytes
        }
        if offset < bytes.count {
            pending.append(contentsOf: bytes[offset...])
        }
    }

    /// Applies the final padding and returns the 32-byte digest.
    mutating func finalize() -> [UInt8] {
        let bitLength = byteCount &* 8
        let zeroCount = (55 - Int(byteCount % 64) + 64) % 64
        var padding = [UInt8](repeating: 0, count: 1 + zeroCount + 8)
        padding[0] = 0x80
        for index in 0 ..< 8 {
            padding[1 + zeroCount + index] = UInt8(truncatingIfNeeded: bitLength >> UInt64(56 - 8 * index))
        }
        padding.withUnsafeBytes { update(bytes: $0) }
        var digest = [UInt8]()
        digest.reserveCapacity(Self.digestByteCount)
        for word in state {
            digest.append(UInt8(truncatingIfNeeded: word >> 24))
            digest.append(UInt8(truncatingIfNeeded: word >> 16))
            digest.append(UInt8(truncatingIfNeeded: word >> 8))
            digest.append(UInt8(truncatingIfNeeded: word))
        }
        return digest
    }

    /// Runs the compression function over `blocks`, whose length is a multiple of 64.
    private mutating func compress(blocks: UnsafeRawBufferPointer) {
        Self.roundConstants.withUnsafeBufferPointer { k in
            state.withUnsafeMutableBufferPointer { h in
                withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
                    var blockStart = 0
                    while blockStart < blocks.count {
                        for t in 0 ..< 16 {
                            w[t] = UInt32(bigEndian: blocks.loadUnaligned(fromByteOffset: blockStart + 4 * t, as: UInt32.self))
                        }
                        for t in 16 ..< 64 {
                            let x = w[t - 15], y = w[t - 2]
                            let s0 = x.rotatedRight(7) ^ x.rotatedRight(18) ^ (x >> 3)
                            let s1 = y.rotatedRight(17) ^ y.rotatedRight(19) ^ (y >> 10)
                            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
                        }
                        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
                        for t in 0 ..< 64 {
                            let s1 = e.rotatedRight(6) ^ e.rotatedRight(11) ^ e.rotatedRight(25)
                            let ch = (e & f) ^ (~e & g)
                            let t1 = hh &+ s1 &+ ch &+ k[t] &+ w[t]
                            let s0 = a.rotatedRight(2) ^ a.rotatedRight(13) ^ a.rotatedRight(22)
                            let maj = (a & b) ^ (a & c) ^ (b & c)
                            let t2 = s0 &+ maj
                            hh = g; g = f; f = e; e = d &+ t1
                            d = c; c = b; b = a; a = t1 &+ t2
                        }
                        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d
                        h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
                        blockStart += 64
                    }
                }
            }
        }
    }
}

extension UInt32 {
    @inline(__always)
    fileprivate func rotatedRight(_ count: UInt32) -> UInt32 {
        (self >> count) | (self << (32 - count))
    }
}
