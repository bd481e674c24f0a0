// Without libFuzzer (a plain `swift build`), terminal-fuzz replays corpus files through the same
// invariants. Built with -DTERMINAL_FUZZ_LIBFUZZER, libFuzzer supplies main instead.

#if !TERMINAL_FUZZ_LIBFUZZER
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `terminal-fuzz [--write-seeds DIR] [FILE|DIR ...]`: replays inputs, exits 0 when all hold.
@main
struct TerminalFuzzReplay {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        if args.first == "--write-seeds", args.count >= 2 {
            print("terminal-fuzz: wrote \(writeSeeds(to: args[1])) seeds to \(args[1])")
            args.removeFirst(2)
        }
        var inputs = 0
        for path in args {
            for file in files(at: path) {
                guard let bytes = readFile(file) else {
                    printError("terminal-fuzz: cannot read \(file)")
                    exit(2)
                }
                fuzzOne(bytes)
                inputs += 1
            }
        }
        print("terminal-fuzz: replayed \(inputs) inputs, all invariants hold")
    }

    /// The entries of a directory (one level, sorted), or the path itself when it is a file.
    static func files(at path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            out.append("\(path)/\(name)")
        }
        return out.sorted()
    }

    /// The whole file, or `nil` when it cannot be read.
    static func readFile(_ path: String) -> [UInt8]? {
        guard let f = fopen(path, "rb") else { return nil }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n > 0 { out.append(contentsOf: buffer[0..<n]) }
            if n < buffer.count { break }
        }
        return ferror(f) == 0 ? out : nil
    }
}
#endif
