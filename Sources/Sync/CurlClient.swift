import CCurl
import CKioskShims
import Foundation

/// A libcurl failure, carrying the `CURLcode` it maps to and libcurl's error text.
public struct CurlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `CURLcode` value (e.g. 7 = CURLE_COULDNT_CONNECT, 28 = CURLE_OPERATION_TIMEDOUT,
    /// 35 = CURLE_SSL_CONNECT_ERROR, 56 = CURLE_RECV_ERROR, 60 = CURLE_PEER_FAILED_VERIFICATION).
    public var code: Int32
    /// libcurl's message for the code, with the detail from `CURLOPT_ERRORBUFFER` when present.
    public var message: String
    /// Creates the error.
    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }
    /// `curl: (code) message`, like the curl tool.
    public var description: String { "curl: (\(code)) \(message)" }
}

/// TLS and transport settings for the HTTPS client.
public struct HTTPClientConfiguration: Sendable, Equatable {
    /// PEM file with the CA certificates that may sign central's server certificate.
    public var caFile: String?
    /// PEM client certificate (mutual TLS).
    public var certFile: String?
    /// PEM private key of the client certificate.
    public var keyFile: String?
    /// Optional public-key pin in libcurl's form, e.g. `sha256//base64==`.
    public var pinnedPublicKey: String?
    /// Optional proxy URL (`http://host:port`); empty means none, nil means libcurl's environment default.
    public var proxy: String?
    /// Connect timeout in milliseconds.
    public var connectTimeoutMillis: Int = 5_000
    /// Whole-request timeout in milliseconds.
    public var totalTimeoutMillis: Int = 15_000
    /// Largest response body accepted, in bytes.
    public var maxResponseBytes: Int = 16 << 20

    /// Creates a configuration.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, pinnedPublicKey: String? = nil,
                proxy: String? = nil, connectTimeoutMillis: Int = 5_000, totalTimeoutMillis: Int = 15_000) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.pinnedPublicKey = pinnedPublicKey
        self.proxy = proxy
        self.connectTimeoutMillis = connectTimeoutMillis
        self.totalTimeoutMillis = totalTimeoutMillis
    }
}

/// An HTTP response as received.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields, names lower-cased; repeated fields keep the last value.
    public var headers: [String: String]
    /// The body bytes.
    public var body: Data
    /// How many new connections libcurl opened for this request (0 when one was reused).
    public var newConnections: Int
}

private final class ResponseSink {
    var body = Data()
    var headers: [String: String] = [:]
    var limit: Int
    var overflow = false
    init(limit: Int) { self.limit = limit }
}

private let writeCallback: ka_curl_write_cb = { ptr, size, nmemb, userdata in
    guard let ptr, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * nmemb
    if sink.body.count + n > sink.limit {
        sink.overflow = true
        return 0  // makes libcurl abort with CURLE_WRITE_ERROR
    }
    ptr.withMemoryRebound(to: UInt8.self, capacity: n) { sink.body.append($0, count: n) }
    return n
}

private let headerCallback: ka_curl_write_cb = { ptr, size, nmemb, userdata in
    guard let ptr, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * nmemb
    let line = ptr.withMemoryRebound(to: UInt8.self, capacity: n) {
        String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        sink.headers.removeAll()  // a new response (after 100-continue or a redirect)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        sink.headers[name] = value
    }
    return n
}

/// A blocking HTTPS client over one libcurl easy handle, so connections are kept alive and reused.
///
/// Not thread-safe: one owner calls it from one thread at a time (``SyncEngine`` runs it on a
/// dedicated dispatch queue, never on Swift's cooperative pool).
public final class CurlHTTPClient {
    private let handle: UnsafeMutableRawPointer
    private let configuration: HTTPClientConfiguration
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

    /// Initialises libcurl once per process (thread-safe since libcurl 7.84).
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    /// Creates a client with the given TLS and transport settings.
    public init(configuration: HTTPClientConfiguration) throws {
        let rc = Self.globalInit
        guard rc == CURLE_OK else { throw CurlError(code: Int32(rc.rawValue), message: String(cString: curl_easy_strerror(rc))) }
        guard let h = curl_easy_init() else { throw CurlError(code: Int32(CURLE_FAILED_INIT.rawValue), message: "curl_easy_init failed") }
        self.handle = h
        self.configuration = configuration
    }

    deinit { curl_easy_cleanup(handle) }

    /// Performs a request and returns the response; throws ``CurlError`` on transport failure.
    public func perform(method: String, url: String, headers: [String] = [], body: Data? = nil) throws -> HTTPResponse {
        curl_easy_reset(handle)
        let sink = ResponseSink(limit: configuration.maxResponseBytes)
        let sinkPtr = Unmanaged.passUnretained(sink).toOpaque()
        var slist: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(slist) }
        for h in headers + ["Expect:"] { slist = curl_slist_append(slist, h) }

        try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_URL, url))
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_NOSIGNAL, 1))
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_TCP_KEEPALIVE, 1))
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeoutMillis))
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_TIMEOUT_MS, configuration.totalTimeoutMillis))
        try check(ka_curl_easy_setopt_off_t(handle, KA_CURLOPT_MAXFILESIZE_LARGE, curl_off_t(configuration.maxResponseBytes)))
        try check(ka_curl_easy_setopt_write_cb(handle, KA_CURLOPT_WRITEFUNCTION, writeCallback))
        try check(ka_curl_easy_setopt_pointer(handle, KA_CURLOPT_WRITEDATA, sinkPtr))
        try check(ka_curl_easy_setopt_write_cb(handle, KA_CURLOPT_HEADERFUNCTION, headerCallback))
        try check(ka_curl_easy_setopt_pointer(handle, KA_CURLOPT_HEADERDATA, sinkPtr))
        try check(ka_curl_easy_setopt_pointer(handle, KA_CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(slist)))
        try errorBuffer.withUnsafeMutableBufferPointer { buf in
            buf[0] = 0
            try check(ka_curl_easy_setopt_pointer(handle, KA_CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(buf.baseAddress)))
        }
        if let ca = configuration.caFile { try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_CAINFO, ca)) }
        if let cert = configuration.certFile { try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_SSLCERT, cert)) }
        if let key = configuration.keyFile { try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_SSLKEY, key)) }
        if let pin = configuration.pinnedPublicKey { try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_PINNEDPUBLICKEY, pin)) }
        if let proxy = configuration.proxy { try check(ka_curl_easy_setopt_string(handle, KA_CURLOPT_PROXY, proxy)) }
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_SSL_VERIFYPEER, 1))
        try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_SSL_VERIFYHOST, 2))

        let rc: CURLcode
        if method == "POST" {
            let payload = body ?? Data()
            try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_POST, 1))
            try check(ka_curl_easy_setopt_off_t(handle, KA_CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(payload.count)))
            rc = payload.withUnsafeBytes { raw -> CURLcode in
                _ = ka_curl_easy_setopt_pointer(handle, KA_CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                return curl_easy_perform(handle)
            }
        } else {
            try check(ka_curl_easy_setopt_long(handle, KA_CURLOPT_HTTPGET, 1))
            rc = curl_easy_perform(handle)
        }
        if sink.overflow {
            throw CurlError(code: Int32(CURLE_FILESIZE_EXCEEDED.rawValue), message: "response larger than \(configuration.maxResponseBytes) bytes")
        }
        try check(rc)
        var status = 0
        var connects = 0
        _ = ka_curl_easy_getinfo_long(handle, KA_CURLINFO_RESPONSE_CODE, &status)
        _ = ka_curl_easy_getinfo_long(handle, KA_CURLINFO_NUM_CONNECTS, &connects)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body, newConnections: connects)
    }

    private func check(_ rc: CURLcode) throws {
        guard rc != CURLE_OK else { return }
        let detail = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let text = String(cString: curl_easy_strerror(rc))
        throw CurlError(code: Int32(rc.rawValue), message: detail.isEmpty ? text : "\(text): \(detail)")
    }
}
