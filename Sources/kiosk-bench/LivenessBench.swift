import ArgumentParser
import Foundation
import Liveness

extension KioskBench {
    /// Face detection per 640×480 frame (full frame and tracked ROI) vs OpenCV's detectMultiScale in the same run.
    struct LivenessMode: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "liveness",
            abstract: "Haar face detection vs OpenCV 4.x (python3-opencv) on the same frames, cascade and parameters."
        )
        @Option(help: "A 640x480 PGM frame with one face (Provisioning/fetch-faces.sh makes .cache/faces/frame640_astronaut.pgm).")
        var frame = ".cache/faces/frame640_astronaut.pgm"
        @Option(help: "Cascade directory.") var cascades = LivenessEngine.defaultCascadeDirectory
        @Option(name: .customLong("repeat"), help: "Repetitions per measurement (median taken).") var repetitions = 15
        @Option(help: "Scale factor.") var scaleFactor = 1.1
        @Option(help: "Min neighbours.") var minNeighbors = 3
        @Option(help: "Min face size (px).") var minSize = 60
        @Option(help: "The OpenCV peer script.") var peer = "Provisioning/liveness_opencv_bench.py"
        @Option(help: "Python with cv2 (Debian python3-opencv).") var python = "/usr/bin/python3"
        @Option(help: "Append results to this JSON file.") var json: String?

        func run() throws {
            let img = try GrayImage(pgmFile: frame)
            let engine = try LivenessEngine(cascadeDirectory: cascades)
            let params = DetectionParameters(scaleFactor: scaleFactor, minNeighbors: minNeighbors, minSize: minSize)
            func median(_ body: () -> Void) -> Double {
                body() // warm-up
                var t: [Double] = []
                for _ in 0..<repetitions {
                    let s = ContinuousClock.now
                    body()
                    let d = ContinuousClock.now - s
                    t.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                }
                return t.sorted()[t.count / 2]
            }
            var faces: [PixelRect] = []
            let full = median { faces = engine.faceDetector.detect(in: img, parameters: params) }
            guard faces.count == 1 else { throw ValidationError("expected one face in \(frame), found \(faces.count)") }
            let w = FaceTracker.searchWindow(around: faces[0], in: img.bounds, base: params)
            var roiFaces: [PixelRect] = []
            let roi = median { roiFaces = engine.faceDetector.detect(in: img, parameters: w.parameters, roi: w.roi) }
            guard roiFaces.count == 1 else { throw ValidationError("ROI search lost the face") }
            // Whole pipeline (tracking, gates, eyes, passive checks) on a jittered sequence, one core.
            let n = 60
            let seq: [GrayImage] = (0..<n).map { i in
                let dx = [0, 1, 2, 1][i % 4], dy = [0, 1, 0, 2][i % 4]
                var f = img
                for y in 0..<img.height { for x in 0..<img.width { f.pixels[y * img.width + x] = img[x - dx, y - dy] } }
                return f
            }
            var session = engine.makeSession(challenge: .blink)
            let s0 = ContinuousClock.now
            for (i, f) in seq.enumerated() { _ = session.process(f, timestamp: Double(i) / 30) }
            let el = ContinuousClock.now - s0
            let fps = Double(n) / (Double(el.components.seconds) + Double(el.components.attoseconds) / 1e18)

            // Peer: OpenCV in a child process, same frame, same cascade, same parameters, same ROI, one thread.
            let p = Process()
            p.executableURL = URL(fileURLWithPath: python)
            p.arguments = [peer, "--frame", frame, "--cascade", cascades + "/haarcascade_frontalface_default.xml",
                           "--scale-factor", String(scaleFactor), "--min-neighbors", String(minNeighbors), "--min-size", String(minSize),
                           "--roi", "\(w.roi.x),\(w.roi.y),\(w.roi.width),\(w.roi.height)",
                           "--roi-min-size", String(w.parameters.minSize), "--roi-max-size", String(w.parameters.maxSize), "--repeat", String(repetitions)]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0, let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let cvFull = obj["full_ms"] as? Double, let cvROI = obj["roi_ms"] as? Double else {
                throw ValidationError("OpenCV peer failed (\(p.terminationStatus)); needs python3-opencv: \(String(decoding: data, as: UTF8.self).prefix(300))")
            }
            let version = obj["opencv"] as? String ?? "?"
            let cvFaces = obj["faces"] as? [[Int]] ?? []
            let agree = cvFaces.contains { $0.count == 4 && PixelRect(x: $0[0], y: $0[1], width: $0[2], height: $0[3]).iou(faces[0]) >= 0.5 }
            print("liveness bench: \(frame) \(img.width)x\(img.height), scale \(scaleFactor), min neighbours \(minNeighbors), min size \(minSize); ours \(faces[0]), OpenCV \(cvFaces) (IoU>=0.5: \(agree))")
            try report([
                BenchResult(name: "face_detect_full_frame", value: full, unit: "ms", peer: "OpenCV \(version) detectMultiScale (1 thread)",
                            peerValue: cvFull, ratio: full / cvFull, goal: "<= 1.0"),
                BenchResult(name: "face_detect_tracked_roi", value: roi, unit: "ms", peer: "OpenCV \(version) detectMultiScale on the same ROI",
                            peerValue: cvROI, ratio: roi / cvROI, goal: "<= 1.0"),
                BenchResult(name: "liveness_pipeline_fps", value: fps, unit: "fps", goal: ">= 30"),
            ], json: json)
        }
    }
}
