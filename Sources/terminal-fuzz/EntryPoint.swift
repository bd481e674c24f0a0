// terminal-fuzz's entry point. A plain `swift build` gives a corpus replayer running the same
// invariants as the fuzzer; built with -DTERMINAL_FUZZ_LIBFUZZER (and -sanitize=fuzzer), main
// hands over to libFuzzer's driver instead.
//
// Why not let libFuzzer supply main: SwiftPM's debug builds rename an executable's entry point to
// `terminal_fuzz_main` and link with `--defsym main=terminal_fuzz_main`, so the product only
// links when this module defines that entry point; ours calls LLVMFuzzerRunDriver.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

#if TERMINAL_FUZZ_LIBFUZZER
/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): parses the flags and fuzzes `callback`.
@_extern(c, "LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

/// `terminal-fuzz [--write-seeds DIR] [FILE|DIR ...]` replays inputs and exits 0 when all hold;
/// the libFuzzer build takes libFuzzer's flags and corpus directories instead.
@main
struct TerminalFuzzMain {
    static func main() {
        #if TERMINAL_FUZZ_LIBFUZZER
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        // A closure, not the @_cdecl function itself: referencing that as a C pointer would emit
        // a second LLVMFuzzerTestOneInput symbol in this file.
        exit(llvmFuzzerRunDriver(&argc, &argv) { data, size in terminalFuzzTestOneInput(data, size) })
        #else
        replay(Array(CommandLine.arguments.dropFirst()))
        #endif
    }

    static func replay(_ arguments: [String]) {
        var args = arguments
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
