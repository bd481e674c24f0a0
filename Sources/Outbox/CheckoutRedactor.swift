import Foundation
import KioskCore

/// Strips what could identify a shopper from a checkout before it is written to disk.
///
/// With sealing on, the application itself reaches the disk only inside its envelope; the
/// checkout beside it keeps what the kiosk needs after a restart (state, history, consent
/// text id and version, amount, the liveness decision) and nothing else: the transaction
/// reference, masked PAN and approval code become ``mark``, the payment token a salted
/// SHA-256 (still usable for the offer cool-down, useless for linking across kiosks), and
/// the liveness check evidence is dropped. The salt is a per-kiosk random file in the state
/// directory. Redaction is idempotent: a checkout read back and saved again is unchanged.
public struct CheckoutRedactor: Sendable, Equatable {
    /// What replaces a redacted field.
    public static let mark = "redacted"
    /// The prefix of a hashed payment token.
    public static let tokenPrefix = "sha256:"

    /// The per-kiosk salt of the payment token hash.
    public let salt: Data

    /// A redactor with this salt (at least 16 bytes).
    public init(salt: Data) {
        self.salt = salt
    }

    /// The hashed form of a payment token (`sha256:` and 32 letters), as stored and as looked up for the cool-down.
    public func tokenKey(_ token: String) -> String {
        if token.hasPrefix(Self.tokenPrefix) { return token }
        // Letters only (hex digits spelled a–p): a digit run in a hash could pass Luhn and make
        // the PAN guard refuse the kiosk's own record.
        let letters = Array("abcdefghijklmnop")
        return Self.tokenPrefix + String(sha256Hex(salt + Data(token.utf8)).prefix(32).map { c in
            letters[Int(String(c), radix: 16) ?? 0]
        })
    }

    /// The checkout as it may be stored.
    public func redact(_ checkout: Checkout) -> Checkout {
        var r = checkout
        r.payment.transactionRef = Self.mark
        r.payment.maskedPAN = Self.mark
        r.payment.approvalCode = Self.mark
        r.payment.terminalToken = tokenKey(checkout.payment.terminalToken)
        r.liveness?.checks = []
        return r
    }

    /// Reads the salt at `path`, creating it (32 random bytes, mode 0600, fsync'd) when missing.
    public static func loadOrCreate(path: String) throws -> CheckoutRedactor {
        if let existing = FileManager.default.contents(atPath: path) {
            guard existing.count >= 16 else {
                throw RedactionSaltError(description: "redaction salt \(path) is too short (\(existing.count) bytes); remove it to make a new one")
            }
            return CheckoutRedactor(salt: existing)
        }
        var salt = Data(count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &generator) }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RedactionSaltError(description: "cannot create \(temporary): \(FileSupport.errnoDescription())") }
        let written = salt.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == salt.count, synced, rename(temporary, path) == 0 else {
            let why = FileSupport.errnoDescription()
            unlink(temporary)
            throw RedactionSaltError(description: "cannot write the redaction salt \(path): \(why)")
        }
        FileSupport.fsyncDirectory(containing: path)
        return CheckoutRedactor(salt: salt)
    }
}

/// The redaction salt file cannot be read or written.
public struct RedactionSaltError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, with the path (and errno where one applies).
    public var description: String
}
