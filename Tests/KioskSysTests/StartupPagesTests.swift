import Testing
@testable import KioskSys

@Suite struct StartupPagesTests {
    static let smaps = """
    55ba1bfc3000-55ba1e45b000 r-xp 00000000 fe:00 5335622                    /opt/kiosk/bin/kiosk-agent
    Size:              37472 kB
    Rss:               15476 kB
    Anonymous:             0 kB
    VmFlags: rd ex mr mw me
    55ba1e45b000-55ba1e554000 r--p 02497000 fe:00 5335622                    /opt/kiosk/bin/kiosk-agent
    Rss:                 996 kB
    Anonymous:           996 kB
    55ba1e554000-55ba20a31000 rw-p 02590000 fe:00 5335622                    /opt/kiosk/bin/kiosk-agent
    Rss:                1580 kB
    Anonymous:           412 kB
    55ba20a31000-55ba20a32000 r--p 00000000 fe:00 5335623                    /opt/kiosk/bin/kiosk-agent-old
    Rss:                   4 kB
    Anonymous:             0 kB
    7f7f24000000-7f7f24100000 r-xp 00000000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
    Rss:                1600 kB
    Anonymous:             0 kB
    7f7f25000000-7f7f25100000 rw-p 00000000 00:00 0
    Rss:                 100 kB
    Anonymous:           100 kB
    7f7f26000000-7f7f26001000 r--p 00000000 fe:00 99                         /opt/kiosk/my bin/kiosk-agent (deleted)
    Rss:                   4 kB
    Anonymous:             0 kB
    """

    @Test func onlyTheExecutablesMappingsAreListedWithTheirCounters() {
        let found = StartupPages.mappings(ofFile: "/opt/kiosk/bin/kiosk-agent", smaps: Self.smaps)
        #expect(found.map(\.permissions) == ["r-xp", "r--p", "rw-p"])
        #expect(found[0] == .init(start: 0x55ba1bfc3000, end: 0x55ba1e45b000, permissions: "r-xp",
                                  residentBytes: 15476 * 1024, anonymousBytes: 0))
        #expect(found[1].anonymousBytes == 996 * 1024)
    }

    @Test func onlyPrivateReadOnlyMappingsWithoutPrivatePagesAreClean() {
        let found = StartupPages.mappings(ofFile: "/opt/kiosk/bin/kiosk-agent", smaps: Self.smaps)
        // Text: clean. RELRO (relocated, copied-on-write) and the writable data: never dropped.
        #expect(found.map(\.isClean) == [true, false, false])
        #expect(!StartupPages.Mapping(start: 0, end: 4096, permissions: "r--s", residentBytes: 4096, anonymousBytes: 0).isClean)
    }

    @Test func aPathWithSpacesOrReplacedOnDiskIsStillTheExecutable() {
        let found = StartupPages.mappings(ofFile: "/opt/kiosk/my bin/kiosk-agent", smaps: Self.smaps)
        #expect(found.count == 1)
        #expect(found.first?.start == 0x7f7f26000000)
    }

    @Test func sharedLibrariesAreRecognisedByName() {
        #expect(StartupPages.isSharedObject("/usr/lib/x86_64-linux-gnu/libc.so.6"))
        #expect(StartupPages.isSharedObject("/usr/lib/x86_64-linux-gnu/libcurl.so.4.8.0"))
        #expect(StartupPages.isSharedObject("/opt/swift/lib/libswiftCore.so"))
        #expect(!StartupPages.isSharedObject("/usr/lib/locale/locale-archive"))
        #expect(!StartupPages.isSharedObject("/var/lib/kiosk/outbox.sqlite"))
        #expect(!StartupPages.isSharedObject("/dev/video0"))
        #expect(!StartupPages.isSharedObject("[vdso]"))
        #expect(!StartupPages.isSharedObject("/home/x/so.notes/readme"))
    }

    /// The test runner is a large Swift binary too: after a release, its clean mappings hold fewer
    /// pages than before, and the process goes on running the code it dropped.
    @Test func releaseDropsTheRunnersOwnPages() throws {
        let exe = try StartupPages.readLink("/proc/self/exe")
        func cleanResident() throws -> Int {
            try StartupPages.mappings(ofFile: exe, smaps: StartupPages.readFile("/proc/self/smaps"))
                .filter(\.isClean).reduce(0) { $0 + $1.residentBytes }
        }
        func cleanLibraryResident() throws -> Int {
            try StartupPages.mappings(smaps: StartupPages.readFile("/proc/self/smaps"), include: StartupPages.isSharedObject)
                .filter(\.isClean).reduce(0) { $0 + $1.residentBytes }
        }
        let before = try cleanResident(), librariesBefore = try cleanLibraryResident()
        let released = try StartupPages.release()
        let after = try cleanResident(), librariesAfter = try cleanLibraryResident()
        #expect(librariesAfter < librariesBefore, "libraries: \(librariesBefore / 1024) KiB before, \(librariesAfter / 1024) KiB after")
        #expect(released.mappings >= 1)
        #expect(released.residentBytes > 0)
        #expect(after < before, "clean pages resident: \(before / 1024) KiB before, \(after / 1024) KiB after")
        #expect(try cleanResident() > 0)  // the code that runs now was mapped again
    }
}
