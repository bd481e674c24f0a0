#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Gives back the pages of the program's own file that only its start-up touched.
///
/// A statically linked Swift daemon faults in a large part of its binary before it does any work:
/// the dynamic loader reads all of `.rela.dyn` and the dynamic symbols, and configuration parsing,
/// migrations and device enumeration run code that the steady state never runs again. The kernel
/// maps those pages (and, with fault-around, their cached neighbours) into the process for good.
/// `MADV_DONTNEED` on a private file mapping that holds no private (copied-on-write) page only
/// drops the mappings: the next access maps the same bytes again from the page cache, so this is
/// safe at any time, from any thread. Mappings with a private page (the RELRO segment after
/// relocation, a debugger's breakpoint) and writable mappings are never touched.
public enum StartupPages {
    /// One mapping of the program's file, as `/proc/self/smaps` describes it.
    public struct Mapping: Sendable, Equatable {
        /// First address.
        public var start: UInt
        /// One past the last address.
        public var end: UInt
        /// The permission string, e.g. `r-xp`.
        public var permissions: String
        /// Resident bytes.
        public var residentBytes: Int
        /// Bytes of private (anonymous, copied-on-write) pages.
        public var anonymousBytes: Int

        /// Whether dropping the mapping's pages loses nothing: private, read-only, no private page.
        public var isClean: Bool {
            permissions.count == 4 && !permissions.contains("w") && permissions.hasSuffix("p") && anonymousBytes == 0
        }
    }

    /// What ``release()`` gave back.
    public struct Release: Sendable, Equatable {
        /// Mappings whose pages were dropped.
        public var mappings: Int
        /// Their resident bytes just before.
        public var residentBytes: Int
    }

    /// The mappings of `path` listed in an smaps text (`/proc/PID/smaps`).
    public static func mappings(ofFile path: String, smaps: String) -> [Mapping] {
        mappings(smaps: smaps) { isFile(path, mappedAs: $0) }
    }

    /// Whether smaps' path column names `path` (also once the file was replaced on disk).
    static func isFile(_ path: String, mappedAs mapped: String) -> Bool {
        mapped == path || mapped == path + " (deleted)"
    }

    /// Whether a mapped path is a shared library (`libfoo.so`, `libfoo.so.1.2`).
    public static func isSharedObject(_ path: String) -> Bool {
        guard path.hasPrefix("/"), let name = path.split(separator: "/").last else { return false }
        return name.hasSuffix(".so") || name.contains(".so.")
    }

    /// The mappings whose path `include` accepts, listed in an smaps text.
    public static func mappings(smaps: String, include: (String) -> Bool) -> [Mapping] {
        var result: [Mapping] = []
        var current: Mapping? = nil
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if !first.hasSuffix(":") {
                // A mapping header: "start-end perms offset dev inode [path]".
                if let mapping = current { result.append(mapping) }
                current = nil
                let range = first.split(separator: "-")
                guard fields.count >= 6, range.count == 2,
                      let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else { continue }
                // The path is the rest of the line (it may hold spaces, or end in " (deleted)").
                let pathStart = fields[5].startIndex
                let mapped = String(line[pathStart...])
                guard include(mapped) else { continue }
                current = Mapping(start: start, end: end, permissions: String(fields[1]), residentBytes: 0, anonymousBytes: 0)
            } else if current != nil, fields.count >= 3, fields[2] == "kB", let kib = Int(fields[1]) {
                if first == "Rss:" { current?.residentBytes = kib * 1024 }
                if first == "Anonymous:" { current?.anonymousBytes = kib * 1024 }
            }
        }
        if let mapping = current { result.append(mapping) }
        return result
    }

    /// Drops the resident pages of the clean mappings of the executable and of the shared libraries
    /// it loaded (see the type's summary). Device memory is never touched: it is mapped shared.
    ///
    /// Throws when `/proc/self/exe` or `/proc/self/smaps` cannot be read, or `madvise` fails.
    public static func release() throws(SystemCallError) -> Release {
        let executable = try readLink("/proc/self/exe")
        let smaps = try readFile("/proc/self/smaps")
        var released = Release(mappings: 0, residentBytes: 0)
        let ours = mappings(smaps: smaps) { isFile(executable, mappedAs: $0) || isSharedObject($0) }
        for mapping in ours where mapping.isClean && mapping.residentBytes > 0 {
            let start = UnsafeMutableRawPointer(bitPattern: mapping.start)
            try systemCall("madvise MADV_DONTNEED") { madvise(start, Int(mapping.end - mapping.start), MADV_DONTNEED) }
            released.mappings += 1
            released.residentBytes += mapping.residentBytes
        }
        return released
    }

    static func readLink(_ path: String) throws(SystemCallError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = try systemCall("readlink \(path)") { readlink(path, &buffer, buffer.count - 1) }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readFile(_ path: String) throws(SystemCallError) -> String {
        let fd = try systemCall("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = try systemCall("read \(path)") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
