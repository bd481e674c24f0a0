import Foundation

/// Finds the face in successive frames: a full-frame search until the first hit, then a search only
/// in a region around the last face (falling back to the full frame when it is lost).
public struct FaceTracker: Sendable {
    /// The face detector.
    public let detector: HaarDetector
    /// Full-frame search parameters.
    public var parameters: DetectionParameters
    /// The last face found (nil before the first hit or after a loss).
    public private(set) var lastFace: PixelRect?
    /// How many of the searches ran only in the region around the last face.
    public private(set) var roiSearches = 0

    /// Creates a tracker.
    public init(detector: HaarDetector, parameters: DetectionParameters) {
        self.detector = detector
        self.parameters = parameters
    }

    /// The region and size range searched around a face in the next frame.
    public static func searchWindow(around face: PixelRect, in bounds: PixelRect, base: DetectionParameters) -> (roi: PixelRect, parameters: DetectionParameters) {
        var p = base
        p.minSize = max(base.minSize, Int(Double(face.width) * 0.75))
        p.maxSize = Int(Double(face.width) * 1.35) + 1
        return (face.expanded(by: 0.35).intersection(bounds), p)
    }

    /// The faces in `image`: searched around the last face first, in the whole frame otherwise.
    public mutating func track(_ image: GrayImage) -> [PixelRect] {
        if let last = lastFace {
            let w = Self.searchWindow(around: last, in: image.bounds, base: parameters)
            let found = detector.detect(in: image, parameters: w.parameters, roi: w.roi)
            if found.count == 1 {
                roiSearches += 1
                lastFace = found[0]
                return found
            }
        }
        let found = detector.detect(in: image, parameters: parameters)
        lastFace = found.count == 1 ? found[0] : nil
        return found
    }

    /// Follows `face` from now on (e.g. the one of several candidates that has eyes).
    public mutating func follow(_ face: PixelRect) { lastFace = face }

    /// Forgets the last face.
    public mutating func reset() { lastFace = nil }
}
