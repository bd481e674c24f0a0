import Foundation

/// The label of a recorded session: "bona_fide" or an attack species ("print", "screen", "static", …).
public enum PresentationLabel {
    /// The label of a live, consenting person.
    public static let bonaFide = "bona_fide"
    /// Labels commonly used for attack species.
    public static let knownAttacks = ["print", "screen", "static", "mask", "video"]
}

/// The label file of a recorded session (`session.json`).
public struct RecordedSessionInfo: Codable, Sendable, Equatable {
    /// One frame: file name inside the session directory and its timestamp (s).
    public struct Frame: Codable, Sendable, Equatable {
        /// PGM file name.
        public var file: String
        /// Capture time in seconds (monotonic, any origin).
        public var timestamp: Double
    }
    /// "bona_fide" or the attack species.
    public var label: String
    /// The challenge the shopper was shown (replayed with the same challenge).
    public var challenge: LivenessChallenge
    /// The frames in order.
    public var frames: [Frame]
    /// Free text: camera profile, lighting, consent reference.
    public var note: String?
    /// When the recording was made (ISO 8601).
    public var recordedAt: String?

    enum CodingKeys: String, CodingKey { case label, challenge, frames, note, recordedAt = "recorded_at" }
}

/// Errors of recording or reading sessions.
public struct SessionFileError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String
}

/// Saves a (consented) session as a PGM frame sequence plus a label JSON, for later evaluation.
public struct SessionRecorder: Sendable {
    /// The session directory.
    public let directory: String
    /// The label of this session.
    public let label: String
    /// The challenge shown.
    public let challenge: LivenessChallenge
    private var frames: [RecordedSessionInfo.Frame] = []
    private let note: String?

    /// Creates the directory (must be empty or absent) for one session.
    public init(directory: String, label: String, challenge: LivenessChallenge, note: String? = nil) throws(SessionFileError) {
        let fm = FileManager.default
        if let existing = try? fm.contentsOfDirectory(atPath: directory), !existing.isEmpty {
            throw SessionFileError(description: "\(directory) is not empty")
        }
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw SessionFileError(description: "cannot create \(directory): \(error)")
        }
        self.directory = directory; self.label = label; self.challenge = challenge; self.note = note
    }

    /// Frames written so far.
    public var frameCount: Int { frames.count }

    /// Writes one frame.
    public mutating func append(_ image: GrayImage, timestamp: Double) throws(SessionFileError) {
        let name = String(format: "frame_%05d.pgm", frames.count)
        do { try image.writePGM(to: directory + "/" + name) } catch { throw SessionFileError(description: error.description) }
        frames.append(.init(file: name, timestamp: timestamp))
    }

    /// Writes `session.json`; call once after the last frame.
    public func finish() throws(SessionFileError) {
        let info = RecordedSessionInfo(label: label, challenge: challenge, frames: frames, note: note,
                                       recordedAt: ISO8601DateFormatter().string(from: Date()))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try enc.encode(info).write(to: URL(fileURLWithPath: directory + "/session.json"), options: .atomic) } catch {
            throw SessionFileError(description: "cannot write session.json: \(error)")
        }
    }

    /// Reads a recorded session's label file.
    public static func info(of directory: String) throws(SessionFileError) -> RecordedSessionInfo {
        guard let data = FileManager.default.contents(atPath: directory + "/session.json") else {
            throw SessionFileError(description: "\(directory)/session.json not found")
        }
        do { return try JSONDecoder().decode(RecordedSessionInfo.self, from: data) } catch {
            throw SessionFileError(description: "\(directory)/session.json: \(error)")
        }
    }

    /// Replays a recorded session through `engine` with its recorded challenge.
    public static func replay(_ directory: String, engine: LivenessEngine) throws(SessionFileError) -> LivenessOutcome {
        let info = try info(of: directory)
        var session = engine.makeSession(challenge: info.challenge)
        for f in info.frames {
            let img: GrayImage
            do { img = try GrayImage(pgmFile: directory + "/" + f.file) } catch { throw SessionFileError(description: error.description) }
            _ = session.process(img, timestamp: f.timestamp)
        }
        return session.result()
    }
}
