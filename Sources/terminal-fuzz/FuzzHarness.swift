// The invariants checked on every fuzz input, shared by the libFuzzer entry and the corpus replayer.

#if canImport(PaymentTerminal)
import KioskCore
import PaymentTerminal
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line to standard error, in one write(2).
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Stops the process when an invariant does not hold (libFuzzer records the input as a crash).
func invariant(_ holds: Bool, _ what: @autoclosure () -> String) {
    guard !holds else { return }
    printError("terminal-fuzz: invariant violated: \(what())")
    abort()
}

/// A deterministic generator seeded from the input, for the chunking.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// FNV-1a over the input: the chunking depends on the input only, so crashes reproduce.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

/// One fuzz input, checked three ways:
/// 1. as a byte stream: decoded whole and in input-derived random chunks, the events must be the
///    same, the decoder's buffer never exceeds one payload, and every frame's payload goes to (2);
/// 2. as a message payload: what decodes re-encodes canonically and decodes to the same envelope
///    and holds no card data; what does not decode throws a MessageError whose text holds no PAN;
/// 3. framed: the input (if 1…4096 bytes) framed decodes back to exactly itself.
func fuzzOne(_ data: [UInt8]) {
    var whole = FrameDecoder()
    var events = whole.feed(data)
    invariant(whole.bufferedByteCount <= FrameCodec.maxPayload, "buffer \(whole.bufferedByteCount) bytes")
    if let e = whole.timeout() { events.append(e) }
    invariant(whole.bufferedByteCount == 0 && !whole.isInsideFrame, "timeout left a partial frame")

    var chunked = FrameDecoder()
    var rng = SplitMix64(state: fnv1a(data))
    let maxChunk = 1 + Int(rng.next() % 97)
    var chunkedEvents: [FrameEvent] = []
    var i = 0
    while i < data.count {
        let n = min(data.count - i, Int.random(in: 1...maxChunk, using: &rng))
        chunkedEvents += chunked.feed(data[i..<(i + n)])
        invariant(chunked.bufferedByteCount <= FrameCodec.maxPayload, "buffer \(chunked.bufferedByteCount) bytes")
        i += n
    }
    if let e = chunked.timeout() { chunkedEvents.append(e) }
    invariant(chunkedEvents == events, "chunking changed the decoded events")

    for case .frame(let payload) in events {
        invariant((1...FrameCodec.maxPayload).contains(payload.count), "frame payload of \(payload.count) bytes")
        checkPayload(payload)
    }
    checkPayload(data)

    if (1...FrameCodec.maxPayload).contains(data.count) {
        do {
            var d = FrameDecoder()
            invariant(d.feed(try FrameCodec.encode(payload: data)) == [.frame(data)], "framed input did not decode to itself")
        } catch {
            invariant(false, "encoding a \(data.count)-byte payload failed: \(error)")
        }
    }
}

/// Message-level invariants for one payload.
func checkPayload(_ payload: [UInt8]) {
    let envelope: TerminalEnvelope
    do {
        envelope = try MessageCodec.decode(payload)
    } catch {
        let text = String(describing: error)
        invariant(!PCIGuard.containsFullPAN(text) && !PCIGuard.containsTrackData(text), "card data in error text")
        return
    }
    invariant(MessageCodec.header(of: payload)?.requestID == envelope.requestID, "request id differs from the header")
    invariant(MessageCodec.header(of: payload)?.type == envelope.message.type.rawValue, "type differs from the header")
    for s in strings(of: envelope.message) {
        invariant(!PCIGuard.containsFullPAN(s) && !PCIGuard.containsTrackData(s), "decoded message holds card data")
    }
    if case .paymentResult(let p) = envelope.message {
        invariant(PANMask.isAcceptableMaskedPAN(p.maskedPAN), "decoded masked PAN reveals too much")
    }
    do {
        let encoded = try MessageCodec.encode(envelope)
        invariant(encoded.count <= payload.count, "re-encoding grew the payload")
        let again = try MessageCodec.decode(encoded)
        invariant(again == envelope, "encode∘decode does not round-trip")
        invariant(try MessageCodec.encode(again) == encoded, "encoding is not canonical")
    } catch {
        invariant(false, "a decoded message does not re-encode: \(error)")
    }
}

/// Every string field of a message (what the PCI invariant scans).
func strings(of m: TerminalMessage) -> [String] {
    switch m {
    case .ping, .displayAck, .statusRequest, .promptResult: []
    case .pong(let i): [i.serial, i.firmware, i.model]
    case .paymentResult(let p): [p.transactionRef, p.currency, p.maskedPAN, p.token, p.approvalCode, p.time]
    case .showPrompt(let p): [p.text] + p.buttons
    case .displayText(let text, _): [text]
    case .status(let s): [s.text]
    }
}

/// Valid encodings to start the fuzzer from: each message framed, each payload raw, and a stream.
func seeds() -> [(name: String, bytes: [UInt8])] {
    let payment = TerminalPayment(
        transactionRef: "TX-000123", amountMinor: 129_900, currency: "CNY", maskedPAN: "622202******1234",
        token: "tok_9f8e7d6c", approvalCode: "A1B2C3", time: "2025-11-23T10:15:00+08:00")
    let messages: [TerminalMessage] = [
        .ping,
        .pong(TerminalInfo(serial: "SN-0042", firmware: "4.2.1", model: "KT-100")),
        .paymentResult(payment),
        .showPrompt(Prompt(text: "Apply for credit?", buttons: ["Yes", "No"], timeoutSeconds: 120)),
        .promptResult(.confirmed(buttonIndex: 1)),
        .promptResult(.declined),
        .promptResult(.timedOut),
        .displayText(text: "Thank you", seconds: 5),
        .displayAck,
        .statusRequest,
        .status(TerminalStatus(state: .busy, text: "transaction in progress")),
    ]
    var out: [(String, [UInt8])] = []
    var stream: [UInt8] = []
    for (k, m) in messages.enumerated() {
        guard let payload = try? MessageCodec.encode(TerminalEnvelope(requestID: UInt32(k + 1), message: m)),
              let frame = try? FrameCodec.encode(payload: payload)
        else { continue }
        let n = k < 10 ? "0\(k)" : "\(k)"
        out.append(("frame-\(n)-\(m.type)", frame))
        out.append(("payload-\(n)-\(m.type)", payload))
        stream += [FrameByte.ack] + frame + [FrameByte.nak, 0x41]
    }
    out.append(("stream", stream))
    return out
}

/// Writes the seeds as files into `directory` (created if missing); returns how many were written.
@discardableResult
func writeSeeds(to directory: String) -> Int {
    mkdir(directory, 0o755)
    var written = 0
    for seed in seeds() {
        guard let f = fopen("\(directory)/\(seed.name)", "wb") else { continue }
        if fwrite(seed.bytes, 1, seed.bytes.count, f) == seed.bytes.count { written += 1 }
        fclose(f)
    }
    return written
}

/// libFuzzer's entry point: checks one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func terminalFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else {
        fuzzOne([])
        return 0
    }
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's start-up hook: with `TERMINAL_FUZZ_WRITE_SEEDS=DIR` set, writes the seed corpus first.
@_cdecl("LLVMFuzzerInitialize")
public func terminalFuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    if let dir = getenv("TERMINAL_FUZZ_WRITE_SEEDS") {
        let n = writeSeeds(to: String(cString: dir))
        printError("terminal-fuzz: wrote \(n) seeds to \(String(cString: dir))")
    }
    return 0
}
