import Foundation

/// The validity window and subject of an X.509 certificate, read from its DER without a full parser.
///
/// Only what `kioskctl doctor` needs: the walk follows RFC 5280's `TBSCertificate` to its
/// `validity` and `subject` fields and reads UTCTime / GeneralizedTime in UTC.
public struct CertificateValidity: Sendable, Equatable {
    /// Start of validity.
    public var notBefore: Date
    /// End of validity.
    public var notAfter: Date
    /// The subject's common name, when present.
    public var commonName: String?

    /// Creates a value.
    public init(notBefore: Date, notAfter: Date, commonName: String? = nil) {
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.commonName = commonName
    }

    /// The certificate is malformed or the file holds none.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// What is wrong.
        public var message: String
        /// The message.
        public var description: String { message }
    }

    /// Reads the first `CERTIFICATE` block of a PEM document.
    public static func parse(pem: String) throws -> CertificateValidity {
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        guard let b = pem.range(of: begin), let e = pem.range(of: end, range: b.upperBound..<pem.endIndex) else {
            throw ParseError(message: "no PEM CERTIFICATE block")
        }
        let body = pem[b.upperBound..<e.lowerBound].filter { !$0.isWhitespace }
        guard let der = Data(base64Encoded: String(body)) else { throw ParseError(message: "the PEM block is not valid base64") }
        return try parse(der: [UInt8](der))
    }

    /// Reads a DER-encoded certificate.
    public static func parse(der: [UInt8]) throws -> CertificateValidity {
        var top = DERReader(der)
        var cert = try top.read(tag: 0x30).reader
        var tbs = try cert.read(tag: 0x30).reader
        if tbs.peekTag == 0xA0 { _ = try tbs.read(tag: 0xA0) }  // [0] version
        _ = try tbs.read(tag: 0x02)  // serialNumber
        _ = try tbs.read(tag: 0x30)  // signature algorithm
        _ = try tbs.read(tag: 0x30)  // issuer
        var validity = try tbs.read(tag: 0x30).reader
        let notBefore = try validity.readTime()
        let notAfter = try validity.readTime()
        let subject = try tbs.read(tag: 0x30).reader
        return CertificateValidity(notBefore: notBefore, notAfter: notAfter, commonName: Self.commonName(subject))
    }

    /// The CN (OID 2.5.4.3) of a Name.
    private static func commonName(_ name: DERReader) -> String? {
        var rdns = name
        while !rdns.atEnd {
            guard var set = try? rdns.read(tag: 0x31).reader else { return nil }
            while !set.atEnd {
                guard var atv = try? set.read(tag: 0x30).reader, let oid = try? atv.read(tag: 0x06) else { return nil }
                guard let value = try? atv.readAny() else { return nil }
                if oid.bytes == [0x55, 0x04, 0x03] { return String(decoding: value.bytes, as: UTF8.self) }
            }
        }
        return nil
    }
}

/// A minimal DER TLV reader.
struct DERReader {
    private let bytes: [UInt8]
    private var offset: Int
    private let limit: Int

    init(_ bytes: [UInt8]) { self.init(bytes, 0, bytes.count) }
    private init(_ bytes: [UInt8], _ offset: Int, _ limit: Int) {
        self.bytes = bytes
        self.offset = offset
        self.limit = limit
    }

    var atEnd: Bool { offset >= limit }
    var peekTag: UInt8? { offset < limit ? bytes[offset] : nil }

    /// One element's tag and content.
    struct Element {
        let tag: UInt8
        let bytes: [UInt8]
        let reader: DERReader
    }

    mutating func readAny() throws -> Element {
        guard offset + 2 <= limit else { throw CertificateValidity.ParseError(message: "truncated DER") }
        let tag = bytes[offset]
        var length = Int(bytes[offset + 1])
        var p = offset + 2
        if length & 0x80 != 0 {
            let n = length & 0x7F
            guard n >= 1, n <= 4, p + n <= limit else { throw CertificateValidity.ParseError(message: "bad DER length") }
            length = 0
            for i in 0..<n { length = length << 8 | Int(bytes[p + i]) }
            p += n
        }
        guard p + length <= limit else { throw CertificateValidity.ParseError(message: "truncated DER") }
        offset = p + length
        return Element(tag: tag, bytes: Array(bytes[p..<p + length]), reader: DERReader(bytes, p, p + length))
    }

    mutating func read(tag: UInt8) throws -> Element {
        let e = try readAny()
        guard e.tag == tag else {
            throw CertificateValidity.ParseError(message: String(format: "expected DER tag 0x%02x, found 0x%02x", tag, e.tag))
        }
        return e
    }

    /// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
    mutating func readTime() throws -> Date {
        let e = try readAny()
        let s = String(decoding: e.bytes, as: UTF8.self)
        let digits = s.hasSuffix("Z") ? String(s.dropLast()) : s
        var fields: [Int] = []
        var text = Substring(digits)
        let yearWidth: Int
        switch e.tag {
        case 0x17: yearWidth = 2
        case 0x18: yearWidth = 4
        default: throw CertificateValidity.ParseError(message: "validity is not a UTCTime or GeneralizedTime")
        }
        guard text.count >= yearWidth + 10, text.allSatisfy(\.isNumber) else {
            throw CertificateValidity.ParseError(message: "unreadable time \(s)")
        }
        for width in [yearWidth, 2, 2, 2, 2, 2] {
            fields.append(Int(text.prefix(width))!)
            text = text.dropFirst(width)
        }
        if yearWidth == 2 { fields[0] += fields[0] >= 50 ? 1900 : 2000 }
        var c = DateComponents()
        c.calendar = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5])
        guard let date = c.date else { throw CertificateValidity.ParseError(message: "invalid time \(s)") }
        return date
    }
}
