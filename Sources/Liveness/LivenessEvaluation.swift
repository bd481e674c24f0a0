import Foundation

/// Error rates over labelled sessions in ISO/IEC 30107-3 terms: APCER per attack species, BPCER.
///
/// A presentation counts as accepted (classified bona fide) only on a `pass`; `fail` and
/// `inconclusive` both reject it (inconclusive counts are reported separately).
public struct LivenessEvaluation: Codable, Sendable, Equatable {
    /// Counts and error rate for one label.
    public struct Rate: Codable, Sendable, Equatable {
        /// Presentations with this label.
        public var presentations: Int
        /// Of them, decided `pass`.
        public var accepted: Int
        /// Of them, decided `inconclusive`.
        public var inconclusive: Int
        /// APCER (attacks: accepted / presentations) or BPCER (bona fide: rejected / presentations); nil without presentations.
        public var rate: Double?
    }
    /// One replayed session.
    public struct SessionResult: Codable, Sendable, Equatable {
        /// Session directory name.
        public var session: String
        /// Its label.
        public var label: String
        /// The decision at the configured thresholds.
        public var decision: LivenessOutcome.Decision
        /// The score.
        public var score: Double
        /// Names of the checks that failed.
        public var failedChecks: [String]

        enum CodingKeys: String, CodingKey { case session, label, decision, score, failedChecks = "failed_checks" }
    }

    /// BPCER over the bona fide sessions.
    public var bpcer: Rate
    /// APCER per attack species (label).
    public var apcer: [String: Rate]
    /// The highest APCER over the species (ISO/IEC 30107-3's APCER of the worst species).
    public var maxAPCER: Double?
    /// Every session's decision.
    public var sessions: [SessionResult]

    enum CodingKeys: String, CodingKey { case bpcer, apcer, maxAPCER = "max_apcer", sessions }

    /// Computes the rates from per-session decisions.
    public init(sessions: [SessionResult]) {
        self.sessions = sessions
        func rate(_ group: [SessionResult], attack: Bool) -> Rate {
            let acc = group.filter { $0.decision == .pass }.count
            let inc = group.filter { $0.decision == .inconclusive }.count
            let r: Double? = group.isEmpty ? nil : Double(attack ? acc : group.count - acc) / Double(group.count)
            return Rate(presentations: group.count, accepted: acc, inconclusive: inc, rate: r)
        }
        bpcer = rate(sessions.filter { $0.label == PresentationLabel.bonaFide }, attack: false)
        var ap: [String: Rate] = [:]
        for species in Set(sessions.map(\.label)) where species != PresentationLabel.bonaFide {
            ap[species] = rate(sessions.filter { $0.label == species }, attack: true)
        }
        apcer = ap
        maxAPCER = ap.values.compactMap(\.rate).max()
    }

    /// Replays every session directory (a directory holding `session.json`) under `directory`.
    public static func evaluate(directory: String, engine: LivenessEngine) throws(SessionFileError) -> LivenessEvaluation {
        let fm = FileManager.default
        var dirs: [String] = []
        if fm.fileExists(atPath: directory + "/session.json") { dirs = [directory] } else {
            guard let names = try? fm.contentsOfDirectory(atPath: directory) else { throw SessionFileError(description: "cannot list \(directory)") }
            dirs = names.sorted().map { directory + "/" + $0 }.filter { fm.fileExists(atPath: $0 + "/session.json") }
        }
        guard !dirs.isEmpty else { throw SessionFileError(description: "no recorded sessions (session.json) under \(directory)") }
        var results: [SessionResult] = []
        for d in dirs {
            let info = try SessionRecorder.info(of: d)
            let o = try SessionRecorder.replay(d, engine: engine)
            results.append(SessionResult(session: (d as NSString).lastPathComponent, label: info.label, decision: o.decision,
                                         score: o.score, failedChecks: o.checks.filter { !$0.passed }.map(\.name)))
        }
        return LivenessEvaluation(sessions: results)
    }

    /// A plain-text summary for technicians.
    public var summary: String {
        func pct(_ r: Double?) -> String { r.map { String(format: "%.1f %%", $0 * 100) } ?? "n/a" }
        var lines = ["BPCER \(pct(bpcer.rate))  (bona fide: \(bpcer.presentations), accepted \(bpcer.accepted), inconclusive \(bpcer.inconclusive))"]
        for (species, r) in apcer.sorted(by: { $0.key < $1.key }) {
            lines.append("APCER[\(species)] \(pct(r.rate))  (attacks: \(r.presentations), accepted \(r.accepted), inconclusive \(r.inconclusive))")
        }
        lines.append("max APCER \(pct(maxAPCER))  over \(apcer.count) species, \(sessions.count) sessions")
        return lines.joined(separator: "\n")
    }
}
