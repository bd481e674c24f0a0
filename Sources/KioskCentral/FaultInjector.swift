import NIOConcurrencyHelpers

/// Decides, reproducibly from a seed, which batch requests are faulted and how.
///
/// Every call to ``next()`` consumes exactly two draws of a SplitMix64 generator, so the
/// n-th batch request the server receives gets the same decision for the same seed, rate
/// and kind list, on every platform and Swift version.
public final class FaultInjector: Sendable {
    /// The configuration this injector follows.
    public let configuration: FaultConfiguration
    /// The seed actually used (the configured one, or the random one picked for `nil`).
    public let seed: UInt64
    private let generator: NIOLockedValueBox<SplitMix64>

    /// Creates an injector; a `nil` seed in `configuration` is replaced by a random one.
    public init(configuration: FaultConfiguration) {
        self.configuration = configuration
        let seed = configuration.seed ?? UInt64.random(in: .min ... .max)
        self.seed = seed
        self.generator = NIOLockedValueBox(SplitMix64(seed: seed))
    }

    /// The decision for the next batch request: a fault to inject, or `nil` to behave.
    public func next() -> FaultKind? {
        let (roll, pick) = self.generator.withLockedValue { generator in
            (generator.next(), generator.next())
        }
        let kinds = self.configuration.kinds
        guard !kinds.isEmpty, self.configuration.rate > 0 else { return nil }
        // 53 random bits -> a uniform Double in [0, 1).
        let unit = Double(roll >> 11) * 0x1.0p-53
        guard unit < self.configuration.rate else { return nil }
        return kinds[Int(pick % UInt64(kinds.count))]
    }
}

/// The SplitMix64 generator: tiny, fast, and fully specified, hence reproducible.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
