// The terminal protocol's messages (the payload of a frame). Wire format in MessageCodec.swift
// and Devices/terminal-protocol.md.

// Without KioskCore, this file builds into the standalone fuzzer (Devices/fuzz-terminal.sh) with
// KioskCore/PCIGuard.swift beside it.
#if canImport(KioskCore)
import KioskCore
#endif

/// Message type codes (first payload byte). Responses are the request's code with bit 7 set.
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Kiosk → terminal: liveness and identity probe.
    case ping = 0x01
    /// Terminal → kiosk (unsolicited): a completed payment.
    case paymentResult = 0x10
    /// Kiosk → terminal: ask the shopper a question on the terminal's screen.
    case showPrompt = 0x20
    /// Kiosk → terminal: show a text for some seconds.
    case displayText = 0x30
    /// Kiosk → terminal: ask for the terminal's state.
    case statusRequest = 0x40
    /// Answer to PING.
    case pong = 0x81
    /// Answer to SHOW_PROMPT.
    case promptResult = 0xA0
    /// Answer to DISPLAY_TEXT.
    case displayAck = 0xB0
    /// Answer to STATUS_REQUEST.
    case status = 0xC0

    /// Whether this type answers a request (bit 7 set) rather than starting an exchange.
    public var isResponse: Bool { rawValue & 0x80 != 0 }

    /// The response type a request expects, `nil` for responses and notifications.
    public var responseType: MessageType? {
        switch self {
        case .ping: .pong
        case .showPrompt: .promptResult
        case .displayText: .displayAck
        case .statusRequest: .status
        case .paymentResult, .pong, .promptResult, .displayAck, .status: nil
        }
    }

    /// The protocol name, e.g. `PAYMENT_RESULT`.
    public var description: String {
        switch self {
        case .ping: "PING"
        case .paymentResult: "PAYMENT_RESULT"
        case .showPrompt: "SHOW_PROMPT"
        case .displayText: "DISPLAY_TEXT"
        case .statusRequest: "STATUS_REQUEST"
        case .pong: "PONG"
        case .promptResult: "PROMPT_RESULT"
        case .displayAck: "DISPLAY_ACK"
        case .status: "STATUS"
        }
    }
}

/// The terminal's identity, carried by PONG.
public struct TerminalInfo: Sendable, Equatable {
    /// The terminal's serial number.
    public var serial: String
    /// The terminal's firmware version.
    public var firmware: String
    /// The terminal's model name.
    public var model: String

    /// Creates a terminal identity.
    public init(serial: String, firmware: String, model: String) {
        self.serial = serial
        self.firmware = firmware
        self.model = model
    }
}

/// A completed payment as the terminal reports it (PAYMENT_RESULT): never a full PAN or track data.
public struct TerminalPayment: Sendable, Equatable {
    /// The terminal's transaction reference.
    public var transactionRef: String
    /// Amount in the currency's minor units (u64 on the wire, at most `Int64.max`).
    public var amountMinor: Int64
    /// ISO 4217 alphabetic code, three uppercase letters, e.g. `CNY`.
    public var currency: String
    /// Masked PAN: at most the first 6 and last 4 digits in clear.
    public var maskedPAN: String
    /// The terminal's token standing for the card.
    public var token: String
    /// The issuer's approval code.
    public var approvalCode: String
    /// When the payment completed, RFC 3339 (e.g. `2025-11-23T10:15:00+08:00`).
    public var time: String

    /// Creates a payment report.
    public init(transactionRef: String, amountMinor: Int64, currency: String, maskedPAN: String, token: String, approvalCode: String, time: String) {
        self.transactionRef = transactionRef
        self.amountMinor = amountMinor
        self.currency = currency
        self.maskedPAN = maskedPAN
        self.token = token
        self.approvalCode = approvalCode
        self.time = time
    }
}

/// A question for the shopper on the terminal's screen (SHOW_PROMPT).
public struct Prompt: Sendable, Equatable {
    /// The most buttons a prompt carries (the answer's index is one byte).
    public static let maxButtons = 255

    /// The question.
    public var text: String
    /// Button labels, in display order (1…255); the answer names one by index.
    public var buttons: [String]
    /// How long the terminal waits for the shopper before answering "timed out" (1…65535 s).
    public var timeoutSeconds: UInt16

    /// Creates a prompt.
    public init(text: String, buttons: [String], timeoutSeconds: UInt16) {
        self.text = text
        self.buttons = buttons
        self.timeoutSeconds = timeoutSeconds
    }
}

/// The shopper's answer to a prompt (PROMPT_RESULT).
public enum PromptOutcome: Sendable, Equatable {
    /// A button was pressed: its index in ``Prompt/buttons``.
    case confirmed(buttonIndex: UInt8)
    /// The shopper cancelled (the terminal's cancel key).
    case declined
    /// Nobody answered within the prompt's timeout.
    case timedOut
}

/// The terminal's state (STATUS).
public struct TerminalStatus: Sendable, Equatable {
    /// Coarse state.
    public enum State: UInt8, Sendable, Equatable, CaseIterable {
        /// Idle, can take a transaction.
        case ready = 0
        /// A transaction or prompt is in progress.
        case busy = 1
        /// Out of order; ``TerminalStatus/text`` says why.
        case error = 2
    }

    /// Coarse state.
    public var state: State
    /// Human-readable detail (may be empty).
    public var text: String

    /// Creates a status.
    public init(state: State, text: String) {
        self.state = state
        self.text = text
    }
}

/// A message of the terminal protocol.
public enum TerminalMessage: Sendable, Equatable {
    /// PING (kiosk → terminal).
    case ping
    /// PONG: the terminal's identity.
    case pong(TerminalInfo)
    /// PAYMENT_RESULT (terminal → kiosk, unsolicited).
    case paymentResult(TerminalPayment)
    /// SHOW_PROMPT (kiosk → terminal).
    case showPrompt(Prompt)
    /// PROMPT_RESULT: the shopper's answer.
    case promptResult(PromptOutcome)
    /// DISPLAY_TEXT (kiosk → terminal): show a text for some seconds.
    case displayText(text: String, seconds: UInt16)
    /// DISPLAY_ACK: the text is shown.
    case displayAck
    /// STATUS_REQUEST (kiosk → terminal).
    case statusRequest
    /// STATUS: the terminal's state.
    case status(TerminalStatus)

    /// The message's type code.
    public var type: MessageType {
        switch self {
        case .ping: .ping
        case .pong: .pong
        case .paymentResult: .paymentResult
        case .showPrompt: .showPrompt
        case .promptResult: .promptResult
        case .displayText: .displayText
        case .displayAck: .displayAck
        case .statusRequest: .statusRequest
        case .status: .status
        }
    }
}

/// A message with the request id that ties a response to its request.
public struct TerminalEnvelope: Sendable, Equatable {
    /// Request id: chosen by the side starting an exchange; a response repeats its request's id.
    public var requestID: UInt32
    /// The message.
    public var message: TerminalMessage

    /// Creates an envelope.
    public init(requestID: UInt32, message: TerminalMessage) {
        self.requestID = requestID
        self.message = message
    }
}
