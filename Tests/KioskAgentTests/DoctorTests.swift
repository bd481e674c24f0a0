import Foundation
import Testing
@testable import KioskAgent

/// A DER TLV.
private func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [tag]
    if content.count < 128 {
        out.append(UInt8(content.count))
    } else {
        var n = content.count, len: [UInt8] = []
        while n > 0 { len.insert(UInt8(n & 0xFF), at: 0); n >>= 8 }
        out.append(0x80 | UInt8(len.count))
        out += len
    }
    return out + content
}

private func utcTime(_ d: Date) -> [UInt8] {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyMMddHHmmss'Z'"
    return tlv(0x17, Array(f.string(from: d).utf8))
}

private func name(_ cn: String) -> [UInt8] {
    tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, [0x55, 0x04, 0x03]) + tlv(0x0C, Array(cn.utf8)))))
}

/// A structurally valid (unsigned) certificate with the given validity, as PEM.
func testCertificatePEM(cn: String = "kiosk-test-0001", notBefore: Date, notAfter: Date) -> String {
    let alg = tlv(0x30, tlv(0x06, [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]))
    let spki = tlv(0x30, alg + tlv(0x03, [0x00] + Array(repeating: 0x04, count: 65)))
    let tbs = tlv(0x30, tlv(0xA0, tlv(0x02, [0x02])) + tlv(0x02, [0x01, 0x23]) + alg + name("Test CA")
                  + tlv(0x30, utcTime(notBefore) + utcTime(notAfter)) + name(cn) + spki)
    let der = tlv(0x30, tbs + alg + tlv(0x03, [0x00, 0x30, 0x00]))
    let b64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
    return "-----BEGIN CERTIFICATE-----\n\(b64)\n-----END CERTIFICATE-----\n"
}

private func tempDir() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiosk-doctor-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite struct DoctorCertificateTests {
    let now = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18

    func check(daysLeft: Double, startedDaysAgo: Double = 30) throws -> DoctorResult {
        let dir = try tempDir()
        let path = dir.appendingPathComponent("device.pem").path
        try testCertificatePEM(notBefore: now.addingTimeInterval(-startedDaysAgo * 86_400), notAfter: now.addingTimeInterval(daysLeft * 86_400))
            .write(toFile: path, atomically: true, encoding: .utf8)
        return Doctor.certificateCheck(path: path, now: now)
    }

    @Test func readsValidityAndCommonName() throws {
        let nb = Date(timeIntervalSince1970: 1_700_000_000), na = Date(timeIntervalSince1970: 1_900_000_000)
        let v = try CertificateValidity.parse(pem: testCertificatePEM(cn: "kiosk-x", notBefore: nb, notAfter: na))
        #expect(v.notBefore == nb)
        #expect(v.notAfter == na)
        #expect(v.commonName == "kiosk-x")
    }

    @Test func validForMonthsIsOK() throws {
        let r = try check(daysLeft: 200)
        #expect(r.status == .ok)
        #expect(r.message.contains("CN=kiosk-test-0001"))
        #expect(r.message.contains("200 days"))
    }

    @Test func expiringWithinFourteenDaysWarns() throws {
        let r = try check(daysLeft: 10)
        #expect(r.status == .warn)
        #expect(r.hint?.contains("kioskctl provision") == true)
        #expect(try check(daysLeft: 14.5).status == .ok)
    }

    @Test func expiredFails() throws {
        let r = try check(daysLeft: -1)
        #expect(r.status == .fail)
        #expect(r.message.contains("expired"))
        #expect(r.hint != nil)
    }

    @Test func notYetValidFailsWithAClockHint() throws {
        let r = try check(daysLeft: 400, startedDaysAgo: -2)
        #expect(r.status == .fail)
        #expect(r.hint?.contains("clock") == true)
    }

    @Test func missingOrGarbageFails() throws {
        #expect(Doctor.certificateCheck(path: nil).status == .fail)
        #expect(Doctor.certificateCheck(path: "/nonexistent/device.pem").status == .fail)
        let dir = try tempDir()
        let path = dir.appendingPathComponent("junk.pem").path
        try "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = Doctor.certificateCheck(path: path)
        #expect(r.status == .fail)
    }

    @Test func generalizedTimeAfter2049() throws {
        // Dates from 2050 on are GeneralizedTime (RFC 5280 §4.1.2.5).
        let alg = tlv(0x30, tlv(0x06, [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]))
        let validity = tlv(0x30, tlv(0x17, Array("250101000000Z".utf8)) + tlv(0x18, Array("20510630120000Z".utf8)))
        let der = tlv(0x30, tlv(0x30, tlv(0x02, [1]) + alg + name("CA") + validity + name("k")) + alg + tlv(0x03, [0]))
        let v = try CertificateValidity.parse(der: der)
        #expect(v.notAfter == Date(timeIntervalSince1970: 2_571_739_200))
        #expect(v.notBefore == Date(timeIntervalSince1970: 1_735_689_600))
    }
}

@Suite struct DoctorKeyTests {
    func key(mode: mode_t) throws -> String {
        let path = try tempDir().appendingPathComponent("device.key").path
        try "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode)
        return path
    }

    @Test func privateKeyIsOK() throws {
        #expect(Doctor.keyCheck(path: try key(mode: 0o600)).status == .ok)
        #expect(Doctor.keyCheck(path: try key(mode: 0o640)).status == .ok)
    }

    @Test func worldReadableKeyFailsWithChmodHint() throws {
        let path = try key(mode: 0o644)
        let r = Doctor.keyCheck(path: path)
        #expect(r.status == .fail)
        #expect(r.message.contains("world-readable"))
        #expect(r.hint == "chmod 600 \(path) (the agent refuses to start with it)")
    }

    @Test func missingKeyFails() {
        #expect(Doctor.keyCheck(path: nil).status == .fail)
        #expect(Doctor.keyCheck(path: "/nonexistent/device.key").status == .fail)
    }
}

@Suite struct DoctorClockTests {
    let t = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func skewAllowsTheHeadersSecondAndTheRoundTrip() {
        #expect(Doctor.clockSkew(localAt: t, serverDate: t) == 0)
        #expect(Doctor.clockSkew(localAt: t.addingTimeInterval(0.9), serverDate: t) == 0)
        #expect(Doctor.clockSkew(localAt: t.addingTimeInterval(2), serverDate: t, roundTrip: 1.5) == 0)
        #expect(Doctor.clockSkew(localAt: t.addingTimeInterval(300), serverDate: t) == 299)
        #expect(Doctor.clockSkew(localAt: t.addingTimeInterval(-300), serverDate: t, roundTrip: 0.5) == -298.5)
    }

    @Test func thresholds() {
        #expect(Doctor.clockCheck(skew: 0).status == .ok)
        #expect(Doctor.clockCheck(skew: 119).status == .ok)
        #expect(Doctor.clockCheck(skew: -121).status == .warn)
        #expect(Doctor.clockCheck(skew: 600).status == .warn)
        let fail = Doctor.clockCheck(skew: -601)
        #expect(fail.status == .fail)
        #expect(fail.message == "601 s behind central")
        #expect(fail.hint?.contains("timedatectl") == true)
    }

    @Test func parsesHTTPDates() {
        #expect(Doctor.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT") == Date(timeIntervalSince1970: 784_111_777))
        #expect(Doctor.parseHTTPDate("yesterday") == nil)
    }

    @Test func clockFromADateHeader() {
        let at = Date(timeIntervalSince1970: 784_111_777 + 700)
        #expect(Doctor.clockCheck(dateHeader: "Sun, 06 Nov 1994 08:49:37 GMT", receivedAt: at, roundTrip: 0.01)?.status == .fail)
        #expect(Doctor.clockCheck(dateHeader: nil, receivedAt: at, roundTrip: 0) == nil)
        #expect(Doctor.clockCheck(probes: []).status == .warn)
    }
}

@Suite struct DoctorDiskAndOutboxTests {
    @Test func diskAgainstTheMinimum() {
        let mb: Int64 = 1 << 20
        #expect(Doctor.diskCheck(directory: "/var/lib/kiosk-agent", minFree: 64 * mb, free: 1024 * mb).status == .ok)
        #expect(Doctor.diskCheck(directory: "/var/lib/kiosk-agent", minFree: 64 * mb, free: 100 * mb).status == .warn)
        let fail = Doctor.diskCheck(directory: "/var/lib/kiosk-agent", minFree: 64 * mb, free: 10 * mb)
        #expect(fail.status == .fail)
        #expect(fail.message.contains("10.0 MiB free"))
        #expect(fail.hint != nil)
        #expect(Doctor.diskCheck(directory: "/x", minFree: 0, free: nil).status == .fail)
    }

    @Test func freeBytesOfAMissingDirectoryUsesItsParent() throws {
        let dir = try tempDir()
        let free = try #require(Doctor.freeBytes(at: dir.appendingPathComponent("not/yet/there").path))
        #expect(free > 0)
        // The same filesystem, read a moment later: equal but for what parallel tests wrote
        // meanwhile (a clean-clone run saw 4 KiB of difference).
        let direct = try #require(Doctor.freeBytes(at: dir.path))
        #expect(abs(free - direct) < 64 << 20, "\(free) vs \(direct)")
        // A missing path on another filesystem is measured there, not on the disk's.
        if let shm = Doctor.freeBytes(at: "/dev/shm"), abs(shm - direct) > 1 << 30 {
            let missing = try #require(Doctor.freeBytes(at: "/dev/shm/kiosk-missing/x"))
            #expect(abs(missing - shm) < 64 << 20)
        }
    }

    @Test func outboxAge() {
        #expect(Doctor.outboxCheck(pending: 0, oldestAge: nil).status == .ok)
        #expect(Doctor.outboxCheck(pending: 3, oldestAge: 120).status == .ok)
        #expect(Doctor.outboxCheck(pending: 3, oldestAge: 3_700).status == .warn)
        #expect(Doctor.outboxCheck(pending: 0, rejected: 2, oldestAge: nil).status == .warn)
    }

    @Test func endpoint() {
        #expect(Doctor.endpoint(of: "https://central.example:8443/api")! == ("central.example", 8443))
        #expect(Doctor.endpoint(of: "https://central.example")! == ("central.example", 443))
        #expect(Doctor.endpoint(of: "https://") == nil)
    }

    @Test func refusedTCPFailsWithAHint() throws {
        // Port 1 on loopback: nothing listens there.
        let r = Doctor.tcpCheck(addresses: ["127.0.0.1"], port: 1, timeout: 2)
        #expect(r.status == .fail)
        #expect(r.message.contains("refused"))
        #expect(r.hint != nil)
    }
}
