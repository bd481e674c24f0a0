import Foundation
@testable import Liveness

/// Synthetic sessions made from one still photo (``Liveness/SyntheticShopper``, shared with the
/// demo and the test VM's feeder): regression tests, not accuracy (see Sources/Liveness/README.md).
typealias Synthesizer = SyntheticShopper

extension SyntheticShopper {
    /// A session of `count` frames of the given kind, following `challenge`.
    func session(_ kind: Kind, challenge: LivenessChallenge, count: Int = 16, seed: UInt64 = 1) -> [GrayImage] {
        session(kind, action: challenge, count: count, seed: seed)
    }
}
