// swift-tools-version:6.2
import PackageDescription

/// kiosk-agent: an edge agent for credit-at-checkout kiosks (see README.md).
let package = Package(
    name: "kiosk-agent",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kiosk-agent", targets: ["kiosk-agent"]),
        .executable(name: "kioskctl", targets: ["kioskctl"]),
        .executable(name: "kiosk-central", targets: ["kiosk-central"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
    ],
    targets: [
        // MARK: C system libraries and shims
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibUSB",
            pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"])]
        ),
        .systemLibrary(
            name: "CV4L2",
            pkgConfig: "libv4l2",
            providers: [.apt(["libv4l-dev"])]
        ),
        // The one errno helper (no Foundation: also used by the VM self-check binary).
        .target(name: "KioskSys"),
        .target(
            name: "CKioskShims",
            dependencies: ["CCurl", "CLibUSB", "CV4L2"]
        ),

        // MARK: Domain and storage (no device I/O)
        .target(
            name: "KioskCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Outbox",
            dependencies: [
                "KioskCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Sync",
            dependencies: [
                "KioskCore", "Outbox", "CCurl", "CKioskShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // Local face liveness: Haar cascades (opencv-data XML), quality gates, challenge, passive checks.
        // Built optimised even in debug: the detector's inner loops are ~30x slower at -Onone.
        .target(name: "Liveness", dependencies: ["KioskCore"], exclude: ["README.md"], swiftSettings: [.unsafeFlags(["-O"])]),

        // MARK: Devices
        .target(
            name: "PaymentTerminal",
            dependencies: [
                "KioskCore", "KioskSys", "CLibUSB", "CKioskShims",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Camera over V4L2 through libv4l2, file replay, supervisor (Sources/Camera).
        .target(
            name: "Camera",
            dependencies: [
                "KioskSys", "CV4L2", "CKioskShims",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The USB terminal emulator: plays the device through Linux FunctionFS (tests and demo).
        .executableTarget(
            name: "terminal-emulator",
            dependencies: ["PaymentTerminal", "KioskSys", "CKioskShims"],
            path: "Devices/terminal-emulator"
        ),
        // libFuzzer entry for the terminal frame decoder (swift build -Xswiftc -sanitize=fuzzer).
        .executableTarget(name: "terminal-fuzz", dependencies: ["PaymentTerminal"]),

        // MARK: Daemon, CLI, reference central
        .target(
            name: "KioskAgent",
            dependencies: [
                "KioskCore", "Outbox", "Sync", "PaymentTerminal", "Camera", "Liveness", "CKioskShims", "ShopperScreen", "KioskSys",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(name: "kiosk-agent", dependencies: ["KioskAgent"]),
        // The shopper's screen: a loopback web page for the kiosk's display (consent, liveness, result).
        .target(
            name: "ShopperScreen",
            dependencies: [
                "KioskCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "kioskctl",
            dependencies: [
                "KioskCore", "Outbox", "KioskAgent", "PaymentTerminal", "Camera", "Liveness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "KioskCentral",
            dependencies: [
                "KioskCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("openapi.yaml")]
        ),
        .executableTarget(
            name: "kiosk-central",
            dependencies: [
                "KioskCentral",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: Benchmarks (make bench)
        .executableTarget(
            name: "kiosk-bench",
            dependencies: [
                "KioskCore", "Outbox", "KioskAgent", "Liveness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Test VM self-checks (run inside the qemu test VM against the kernel's drivers)
        .executableTarget(name: "vm-selfcheck", dependencies: ["KioskSys", "CLibUSB", "CV4L2", "CKioskShims"]),

        // MARK: Tests
        .testTarget(name: "KioskCoreTests", dependencies: ["KioskCore"]),
        .testTarget(
            name: "OutboxTests",
            dependencies: ["Outbox", "KioskCore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "SyncTests", dependencies: ["Sync", "Outbox", "KioskCore", "KioskCentral"]),
        .testTarget(name: "KioskAgentTests", dependencies: ["KioskAgent"]),
        .testTarget(name: "CameraTests", dependencies: ["Camera"]),
        .testTarget(name: "KioskSysTests", dependencies: ["KioskSys"]),
        .testTarget(name: "PaymentTerminalTests", dependencies: ["PaymentTerminal", "KioskSys", "KioskCore"]),
        .testTarget(
            name: "KioskCentralTests",
            dependencies: ["KioskCentral", "KioskCore", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "LivenessTests", dependencies: ["Liveness", "KioskCore"]),
        .testTarget(
            name: "ShopperScreenTests",
            dependencies: ["ShopperScreen", "KioskCore", "KioskAgent", "Outbox", "PaymentTerminal", "Camera", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["KioskCore", "KioskCentral", "KioskAgent", "Sync", "Outbox"]),
    ]
)
