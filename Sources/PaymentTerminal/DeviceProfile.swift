import Foundation

/// How a payment terminal model is reached over USB: ids, the interface to claim, its endpoints,
/// its timeouts and the protocol it speaks. Loaded from `Devices/profiles/*.json`
/// (installed to `/usr/share/kiosk-agent/profiles/`); see `Devices/profiles/README.md`.
public struct DeviceProfile: Sendable, Equatable {
    /// One endpoint of the claimed interface.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// The transfer type libusb uses for it.
        public enum TransferType: String, Sendable, Hashable {
            case bulk, interrupt
        }
        /// `bEndpointAddress`: bit 7 set for IN (device to host), number in bits 0–3.
        public var address: UInt8
        public var type: TransferType

        public init(address: UInt8, type: TransferType) {
            self.address = address
            self.type = type
        }

        /// True for IN (device-to-host) endpoints.
        public var isIn: Bool { address & 0x80 != 0 }

        /// `bulk IN 0x81`.
        public var description: String { "\(type.rawValue) \(isIn ? "IN" : "OUT") \(hex2(address))" }
    }

    /// Timeouts of the link protocol for this terminal.
    public struct Timeouts: Sendable, Equatable {
        /// How long one USB write may take before it fails.
        public var write: Duration
        /// How long to wait for the terminal's ACK/NAK of a frame.
        public var ack: Duration
        /// How long to wait for the terminal's answer to a request (a prompt waits for a human).
        public var answer: Duration

        public init(write: Duration, ack: Duration, answer: Duration) {
            self.write = write
            self.ack = ack
            self.answer = answer
        }
    }

    /// The profile's name (`kiosk-emulated-terminal`); equals the file name without `.json`.
    public var name: String
    /// Free text for people.
    public var description: String
    /// The link protocol the terminal speaks (one of ``DeviceProfile/knownProtocols``).
    public var protocolName: String
    public var vendorID: UInt16
    public var productID: UInt16
    /// `bInterfaceNumber` of the interface to claim.
    public var interfaceNumber: UInt8
    /// `bAlternateSetting` to select after claiming (0 selects nothing).
    public var alternateSetting: UInt8
    /// Where the terminal's frames come from (bulk or interrupt IN).
    public var inEndpoint: Endpoint
    /// Where frames to the terminal go (bulk or interrupt OUT).
    public var outEndpoint: Endpoint
    public var timeouts: Timeouts

    public init(
        name: String, description: String = "", protocolName: String, vendorID: UInt16, productID: UInt16,
        interfaceNumber: UInt8 = 0, alternateSetting: UInt8 = 0, inEndpoint: Endpoint, outEndpoint: Endpoint,
        timeouts: Timeouts
    ) {
        self.name = name
        self.description = description
        self.protocolName = protocolName
        self.vendorID = vendorID
        self.productID = productID
        self.interfaceNumber = interfaceNumber
        self.alternateSetting = alternateSetting
        self.inEndpoint = inEndpoint
        self.outEndpoint = outEndpoint
        self.timeouts = timeouts
    }

    /// `1209:4b41`.
    public var usbID: String { "\(hex4(vendorID)):\(hex4(productID))" }

    /// Link protocols this build speaks (Devices/terminal-protocol.md).
    public static let knownProtocols: Set<String> = ["kiosk-terminal-link/1"]

    /// Where installed profiles live.
    public static let installedDirectory = "/usr/share/kiosk-agent/profiles"
}

/// A profile file could not be used: names the file, the field (a dotted path such as
/// `usb.in_endpoint.address`) and what is wrong.
public struct DeviceProfileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or the source name given to ``DeviceProfile/parse(_:source:)``).
    public var file: String
    /// The dotted field path; empty when the error concerns the whole file.
    public var field: String
    public var message: String

    public init(file: String, field: String, message: String) {
        self.file = file
        self.field = field
        self.message = message
    }

    /// `Devices/profiles/x.json: field usb.vendor_id: expected ...`.
    public var description: String {
        field.isEmpty ? "\(file): \(message)" : "\(file): field \(field): \(message)"
    }
}

extension DeviceProfile {
    /// Reads one profile file.
    public static func load(path: String) throws(DeviceProfileError) -> DeviceProfile {
        let profile = try parse(try ProfileReader.contents(of: path), source: path)
        let base = (path as NSString).lastPathComponent
        let stem = base.hasSuffix(".json") ? String(base.dropLast(5)) : base
        guard stem == profile.name else {
            throw DeviceProfileError(file: path, field: "name", message: "is \"\(profile.name)\" but the file is named \(base); name the file \(profile.name).json")
        }
        return profile
    }

    /// Reads every `*.json` of a directory (sorted by name). Two profiles for the same
    /// vendor:product id are an error: the agent could not tell which one applies.
    public static func loadAll(directory: String) throws(DeviceProfileError) -> [DeviceProfile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        } catch {
            throw DeviceProfileError(file: directory, field: "", message: "cannot list the profile directory: \(error.localizedDescription)")
        }
        var profiles: [DeviceProfile] = []
        var byID: [String: String] = [:]
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let profile = try load(path: path)
            if let other = byID[profile.usbID] {
                throw DeviceProfileError(file: path, field: "usb", message: "\(profile.usbID) is already claimed by \(other)")
            }
            byID[profile.usbID] = name
            profiles.append(profile)
        }
        return profiles
    }

    /// Parses a profile document. `source` names it in errors.
    public static func parse(_ data: Data, source: String) throws(DeviceProfileError) -> DeviceProfile {
        do {
            return try JSONDecoder().decode(ProfileDocument.self, from: data).profile
        } catch var error as DeviceProfileError {
            error.file = source  // the reader does not know the file: it is named here
            throw error
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            throw DeviceProfileError(file: source, field: "", message: "is not valid JSON" + (detail.map { ": \($0)" } ?? ""))
        } catch let error as DecodingError {
            throw ProfileReader.translate(error, source: source)
        } catch {
            throw DeviceProfileError(file: source, field: "", message: "\(error)")
        }
    }
}

// MARK: - Reading

/// A JSON object key.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A JSON object being read field by field; every error names the file and the dotted path.
/// Its errors leave the file empty; ``DeviceProfile/parse(_:source:)`` fills it in.
struct ProfileReader {
    let container: KeyedDecodingContainer<AnyKey>
    let path: String

    init(_ container: KeyedDecodingContainer<AnyKey>, path: String, allowed: [String]) throws(DeviceProfileError) {
        self.container = container
        self.path = path
        for key in container.allKeys where !allowed.contains(key.stringValue) {
            throw error(key.stringValue, "unknown field (allowed here: \(allowed.joined(separator: ", ")))")
        }
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ message: String) -> DeviceProfileError {
        DeviceProfileError(file: "", field: field(key), message: message)
    }

    func has(_ key: String) -> Bool { container.contains(AnyKey(key)) }

    func string(_ key: String) throws(DeviceProfileError) -> String {
        guard has(key) else { throw error(key, "is missing (a string)") }
        do {
            return try container.decode(String.self, forKey: AnyKey(key))
        } catch {
            throw self.error(key, "expected a string")
        }
    }

    /// An integer written as a JSON number or as a `"0x..."` hexadecimal string, within `range`.
    func integer(_ key: String, in range: ClosedRange<Int>, default def: Int? = nil) throws(DeviceProfileError) -> Int {
        guard has(key) else {
            if let def { return def }
            throw error(key, "is missing (a number, or a \"0x...\" hex string)")
        }
        let value: Int
        if let n = try? container.decode(Int.self, forKey: AnyKey(key)) {
            value = n
        } else if let text = try? container.decode(String.self, forKey: AnyKey(key)) {
            let lower = text.lowercased()
            guard lower.hasPrefix("0x"), let n = Int(lower.dropFirst(2), radix: 16) else {
                throw error(key, "\"\(text)\" is not a number (write 4660 or \"0x1234\")")
            }
            value = n
        } else {
            throw error(key, "expected a number or a \"0x...\" hex string")
        }
        guard range.contains(value) else {
            throw error(key, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    func object(_ key: String, allowed: [String]) throws(DeviceProfileError) -> ProfileReader {
        guard has(key) else { throw error(key, "is missing (an object)") }
        let nested: KeyedDecodingContainer<AnyKey>
        do {
            nested = try container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(key))
        } catch {
            throw self.error(key, "expected an object")
        }
        return try ProfileReader(nested, path: field(key), allowed: allowed)
    }

    /// The bytes of a profile file; an unreadable file is an error naming it.
    static func contents(of path: String) throws(DeviceProfileError) -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DeviceProfileError(file: path, field: "", message: "cannot be read: \(error.localizedDescription)")
        }
    }

    /// DecodingErrors that escaped a typed read (e.g. the top level is not an object).
    static func translate(_ error: DecodingError, source: String) -> DeviceProfileError {
        func dotted(_ path: [any CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .typeMismatch(_, let c): return DeviceProfileError(file: source, field: dotted(c.codingPath), message: "wrong type: \(c.debugDescription)")
        case .valueNotFound(_, let c): return DeviceProfileError(file: source, field: dotted(c.codingPath), message: "is null")
        case .keyNotFound(let k, let c): return DeviceProfileError(file: source, field: dotted(c.codingPath + [k]), message: "is missing")
        case .dataCorrupted(let c): return DeviceProfileError(file: source, field: dotted(c.codingPath), message: c.debugDescription)
        @unknown default: return DeviceProfileError(file: source, field: "", message: "\(error)")
        }
    }
}

private struct ProfileDocument: Decodable {
    let profile: DeviceProfile

    init(from decoder: any Decoder) throws {
        let top: KeyedDecodingContainer<AnyKey>
        do {
            top = try decoder.container(keyedBy: AnyKey.self)
        } catch {
            throw DeviceProfileError(file: "", field: "", message: "the top level must be a JSON object")
        }
        let root = try ProfileReader(top, path: "", allowed: ["name", "description", "protocol", "usb", "timeouts_ms"])

        let name = try root.string("name")
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw root.error("name", "\"\(name)\" must be non-empty lower-case letters, digits and '-'")
        }
        let description = root.has("description") ? try root.string("description") : ""
        let protocolName = try root.string("protocol")
        guard DeviceProfile.knownProtocols.contains(protocolName) else {
            throw root.error("protocol", "\"\(protocolName)\" is not a protocol this build speaks (known: \(DeviceProfile.knownProtocols.sorted().joined(separator: ", ")))")
        }

        let usb = try root.object("usb", allowed: ["vendor_id", "product_id", "interface", "alt_setting", "in_endpoint", "out_endpoint"])
        let vendorID = UInt16(try usb.integer("vendor_id", in: 0x0001...0xFFFF))
        let productID = UInt16(try usb.integer("product_id", in: 0x0000...0xFFFF))
        let interface = UInt8(try usb.integer("interface", in: 0...255, default: 0))
        let alt = UInt8(try usb.integer("alt_setting", in: 0...255, default: 0))
        let inEndpoint = try Self.endpoint(usb, "in_endpoint", isIn: true)
        let outEndpoint = try Self.endpoint(usb, "out_endpoint", isIn: false)

        let t = try root.object("timeouts_ms", allowed: ["write", "ack", "answer"])
        let timeouts = DeviceProfile.Timeouts(
            write: .milliseconds(try t.integer("write", in: 1...60_000, default: 1000)),
            ack: .milliseconds(try t.integer("ack", in: 1...60_000)),
            answer: .milliseconds(try t.integer("answer", in: 1...600_000)))

        profile = DeviceProfile(
            name: name, description: description, protocolName: protocolName, vendorID: vendorID, productID: productID,
            interfaceNumber: interface, alternateSetting: alt, inEndpoint: inEndpoint, outEndpoint: outEndpoint, timeouts: timeouts)
    }

    private static func endpoint(_ usb: ProfileReader, _ key: String, isIn: Bool) throws(DeviceProfileError) -> DeviceProfile.Endpoint {
        let e = try usb.object(key, allowed: ["address", "type"])
        let address = UInt8(try e.integer("address", in: 0x01...0xFF))
        guard address & 0x70 == 0, address & 0x0F != 0 else {
            throw e.error("address", "\(hex2(address)) is not an endpoint address (number 1-15 in bits 0-3, direction in bit 7)")
        }
        guard (address & 0x80 != 0) == isIn else {
            throw e.error("address", "\(hex2(address)) is an \(address & 0x80 != 0 ? "IN" : "OUT") endpoint; \(key) needs \(isIn ? "IN (bit 7 set, e.g. 0x81)" : "OUT (bit 7 clear, e.g. 0x02)")")
        }
        let typeText = try e.string("type")
        guard let type = DeviceProfile.Endpoint.TransferType(rawValue: typeText) else {
            throw e.error("type", "\"\(typeText)\" is not bulk or interrupt")
        }
        return DeviceProfile.Endpoint(address: address, type: type)
    }
}

/// `0x81`.
package func hex2(_ v: UInt8) -> String {
    let s = String(v, radix: 16)
    return "0x" + (s.count < 2 ? "0" + s : s)
}

/// `4b41` (four hex digits, no prefix: the form lsusb and udev use).
package func hex4(_ v: UInt16) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 4 - s.count) + s
}
