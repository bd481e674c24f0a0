import Foundation
import KioskCore

/// The versioned consent texts per language, read from `<dir>/<id>.<language>.txt`.
///
/// The text served to the page is the exact file content (UTF-8), and its SHA-256 is what the
/// checkout records: the page echoes the hash back with the answer, so a text changed on disk
/// after the page loaded it is refused rather than recorded under the wrong hash.
public struct ConsentLibrary: Sendable, Equatable {
    /// The texts by language tag (BCP 47, e.g. "en", "zh-Hans").
    public let texts: [String: ConsentText]
    /// The language shown first.
    public let defaultLanguage: String

    /// Creates a library from texts already loaded.
    public init(texts: [ConsentText], defaultLanguage: String) {
        var map: [String: ConsentText] = [:]
        for t in texts { map[t.language] = t }
        self.texts = map
        self.defaultLanguage = defaultLanguage
    }

    /// Loads every `<id>.<language>.txt` in `directory`; throws when none is found or the
    /// default language is missing.
    public static func load(directory: String, id: String, version: String, defaultLanguage: String) throws -> ConsentLibrary {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        var texts: [ConsentText] = []
        for name in names where name.hasPrefix(id + ".") && name.hasSuffix(".txt") {
            let language = String(name.dropFirst(id.count + 1).dropLast(4))
            guard !language.isEmpty, !language.contains(".") else { continue }
            let text = try String(contentsOfFile: (directory as NSString).appendingPathComponent(name), encoding: .utf8)
            texts.append(ConsentText(id: id, version: version, language: language, text: text))
        }
        let library = ConsentLibrary(texts: texts, defaultLanguage: defaultLanguage)
        guard library.texts[defaultLanguage] != nil else {
            throw ConsentLibraryError(message: "no \(id).\(defaultLanguage).txt in \(directory) (found: \(library.languages.joined(separator: ", ")))")
        }
        return library
    }

    /// The languages available, sorted.
    public var languages: [String] { texts.keys.sorted() }

    /// The text for `language`, falling back to the default language.
    public func text(language: String?) -> ConsentText? {
        if let language, let t = texts[language] { return t }
        return texts[defaultLanguage]
    }

    /// The text for `language` only when its hash is `sha256` (the text the page showed).
    public func verified(language: String, sha256: String) -> ConsentText? {
        guard let t = texts[language], t.sha256 == sha256.lowercased() else { return nil }
        return t
    }
}

/// The consent directory cannot be used.
public struct ConsentLibraryError: Error, Sendable, CustomStringConvertible {
    /// Why.
    public var message: String
    /// The message.
    public var description: String { message }
}
