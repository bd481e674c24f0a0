import ArgumentParser
import Foundation
import Liveness

extension KioskCtl {
    /// `kioskctl liveness …`: record labelled sessions and measure APCER/BPCER on them.
    struct LivenessCmd: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "liveness",
            abstract: "Record labelled liveness sessions (with consent) and evaluate the checks on them.",
            subcommands: [Record.self, Eval.self]
        )
    }
}

/// A liveness command failure (printed as `Error: …` without the usage text).
struct LivenessCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Options shared by the liveness subcommands.
struct LivenessOptions: ParsableArguments {
    @Option(help: "Directory of OpenCV's Haar cascades (Debian opencv-data).")
    var cascades = LivenessEngine.defaultCascadeDirectory

    @Option(help: "Thresholds JSON (the thresholds object, or a camera profile with a \"liveness\" object).")
    var thresholds: String?

    /// The engine with the configured thresholds.
    func engine() throws -> LivenessEngine {
        let t = try thresholds.map { try LivenessThresholds.load(path: $0) } ?? LivenessThresholds()
        do { return try LivenessEngine(cascadeDirectory: cascades, thresholds: t) } catch {
            throw LivenessCLIError("\(error) (is opencv-data installed? Provisioning/deps.sh)")
        }
    }
}

extension KioskCtl.LivenessCmd {
    /// `kioskctl liveness record --frames-from DIR --label L --out DIR`.
    struct Record: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save a session as PGM frames plus a label file (session.json), and show the outcome.",
            discussion: """
            Record only with the person's consent. Frames come from a directory of 8-bit PGM files \
            (e.g. the camera's file replay source or `kioskctl camera snapshot` series), in name order. \
            Labels: bona_fide, or the attack species (print, screen, static, video, mask, …).
            """
        )
        @OptionGroup var options: LivenessOptions
        @Option(help: "Directory of PGM frames to record from (sorted by name).") var framesFrom: String
        @Option(help: "bona_fide or the attack species.") var label: String
        @Option(help: "Session directory to create (must be empty).") var out: String
        @Option(help: "Frames per second of the source (timestamps).") var fps = 15.0
        @Option(help: "Challenge shown: blink, turn_left, turn_right, move_closer (default: random).") var challenge: String?
        @Option(help: "Note stored with the session (camera profile, lighting, consent reference).") var note: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let engine = try options.engine()
            let fm = FileManager.default
            guard let names = try? fm.contentsOfDirectory(atPath: framesFrom) else { throw LivenessCLIError("cannot list \(framesFrom)") }
            let frames = names.filter { $0.lowercased().hasSuffix(".pgm") }.sorted()
            guard !frames.isEmpty else { throw LivenessCLIError("no .pgm frames in \(framesFrom)") }
            guard fps > 0 else { throw ValidationError("--fps must be positive") }
            var session: LivenessSession
            if let challenge {
                guard let c = LivenessChallenge(rawValue: challenge) else { throw ValidationError("unknown challenge \(challenge)") }
                session = engine.makeSession(challenge: c)
            } else {
                session = engine.makeSession()
            }
            var recorder = try SessionRecorder(directory: out, label: label, challenge: session.challenge, note: note)
            var last = LivenessGuidance.faceTheCamera
            for (i, name) in frames.enumerated() {
                let img = try GrayImage(pgmFile: framesFrom + "/" + name)
                let ts = Double(i) / fps
                try recorder.append(img, timestamp: ts)
                last = session.process(img, timestamp: ts)
            }
            try recorder.finish()
            let outcome = session.result()
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(outcome), as: UTF8.self))
            } else {
                print("recorded \(recorder.frameCount) frames to \(out) (label \(label), challenge \(session.challenge.rawValue))")
                print("outcome: \(outcome.decision.rawValue), score \(String(format: "%.2f", outcome.score)), last guidance: \(last.message)")
                for c in outcome.checks {
                    print("  \(c.passed ? "ok  " : "FAIL") \(c.name) = \(String(format: "%.3f", c.value)) (threshold \(String(format: "%.3f", c.threshold)))")
                }
            }
        }
    }

    /// `kioskctl liveness eval DIR [--json]`.
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay recorded sessions: APCER per attack species and BPCER (ISO/IEC 30107-3) at the configured thresholds."
        )
        @OptionGroup var options: LivenessOptions
        @Argument(help: "A directory of recorded sessions (each with session.json), or one session.") var directory: String
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let ev: LivenessEvaluation
            do { ev = try LivenessEvaluation.evaluate(directory: directory, engine: try options.engine()) } catch let e as SessionFileError {
                throw LivenessCLIError(e.description)
            }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(ev), as: UTF8.self))
                return
            }
            for s in ev.sessions {
                print("\(s.session)  \(s.label)  \(s.decision.rawValue)  score \(String(format: "%.2f", s.score))\(s.failedChecks.isEmpty ? "" : "  failed: " + s.failedChecks.joined(separator: ","))")
            }
            print(ev.summary)
        }
    }
}
