import Foundation
import Testing

@testable import KioskCore

/// FIPS 180-2 test vectors and block-boundary checks for the project's SHA-256 helper (swift-crypto underneath).
@Suite("SHA-256")
struct SHA256Tests {
    @Test("FIPS 180-2: \"abc\"")
    func abc() {
        #expect(
            sha256Hex(Data("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("FIPS 180-2: empty string")
    func empty() {
        #expect(
            sha256Hex(Data())
                == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("FIPS 180-2: 448-bit two-block message")
    func twoBlocks() {
        #expect(
            sha256Hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("FIPS 180-2: one million \"a\", in one piece")
    func millionA() {
        #expect(
            sha256Hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(
        "Padding boundaries (lengths around 55, 56 and 64 bytes)",
        arguments: [
            (55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
            (56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
            (63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
            (64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
            (119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"),
            (120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"),
            (128, "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"),
        ])
    func boundaries(length: Int, expected: String) {
        #expect(sha256Hex(Data(repeating: UInt8(ascii: "a"), count: length)) == expected)
    }

    @Test("All byte values, non-contiguous DataProtocol input")
    func allBytes() {
        let block = Data((0 ... 255).map { UInt8($0) })
        var dispatchData = DispatchData.empty
        for _ in 0 ..< 7 {
            block.withUnsafeBytes { dispatchData.append($0) }
        }
        #expect(
            sha256Hex(dispatchData) == "a3652ad1f4cb62f8cec5a16bf51b158f2f538cbeaa72c8d647fcdac6b1cc6cfa")
    }
}
