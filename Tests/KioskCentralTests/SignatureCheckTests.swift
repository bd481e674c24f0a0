import Foundation
import KioskCore
import Testing
@testable import KioskCentral

/// Central refuses an application whose authorization signature does not verify.
@Suite struct SignatureCheckTests {
    static func item(_ app: CreditApplication) throws -> BatchItem {
        let payload = String(decoding: try app.canonicalPayload(), as: UTF8.self)
        return BatchItem(id: app.id, sequence: 1, payloadSHA256: sha256Hex(Data(payload.utf8)), payload: payload)
    }

    @Test func signedUnsignedAndTamperedAuthorizations() throws {
        var app = CreditApplication.sample()
        #expect(CentralStore.precheck(try Self.item(app)) == nil, "unsigned: accepted (older agents)")
        app.authorization = try AuthorizationSigner.generate().sign(app.authorization)
        #expect(CentralStore.precheck(try Self.item(app)) == nil, "signed: accepted")
        var tampered = app
        tampered.authorization.consentVersion = "2099.1"
        #expect(CentralStore.precheck(try Self.item(tampered)) == .badSignature)
        var forged = app
        forged.authorization.signature?.value = "AAAA"
        #expect(CentralStore.precheck(try Self.item(forged)) == .badSignature)
    }
}
