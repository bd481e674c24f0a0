import Camera
import Foundation
import Liveness
import KioskCore
import KioskSys
import Logging
import Outbox
import PaymentTerminal
import ServiceLifecycle
import ShopperScreen
import Synchronization
import Sync

/// The agent's version string.
public let kioskAgentVersion = "0.1.0"

/// Progress marks of the daemon's loops, read by the watchdog.
public final class Heartbeat: Sendable {
    private let last = Mutex(ContinuousClock.now)
    private let ready = Mutex(false)
    /// Creates a heartbeat marked now.
    public init() {}
    /// Marks the daemon ready (READY=1 sent); the watchdog pings only after this.
    public func markReady() { ready.withLock { $0 = true } }
    /// Whether READY=1 was sent.
    public var isReady: Bool { ready.withLock { $0 } }
    /// Marks progress.
    public func beat() { last.withLock { $0 = ContinuousClock.now } }
    /// Time since the last mark.
    public var age: Duration { ContinuousClock.now - last.withLock { $0 } }
}

/// Sends `WATCHDOG=1` only while the main loop's heartbeat is fresh.
struct WatchdogService: Service {
    let notifier: SystemdNotifier
    let interval: Duration
    let heartbeat: Heartbeat
    let staleAfter: Duration
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await loop() }
    }

    func loop() async throws {
        var warned = false
        while !Task.isCancelled {
            if !heartbeat.isReady {
                // READY=1 comes first; no watchdog ping before it.
            } else if heartbeat.age < staleAfter {
                notifier.watchdog()
                warned = false
            } else if !warned {
                logger.error("main loop made no progress; withholding the watchdog ping", metadata: ["age_ms": "\(heartbeat.age.milliseconds)"])
                warned = true
            }
            try await Task.sleep(for: interval)
        }
    }
}

/// Sends `STOPPING=1` as soon as graceful shutdown begins.
struct LifecycleNotifierService: Service {
    let notifier: SystemdNotifier
    let logger: Logger
    func run() async throws {
        try? await gracefulShutdown()
        logger.notice("shutting down")
        notifier.stopping()
    }
}

/// Purges synced rows and final checkouts older than the retention period, hourly (an unsynced
/// application is never purged; a checkout still open is never purged).
struct RetentionService: Service {
    let outbox: Outbox
    let retention: TimeInterval
    let executor: BlockingExecutor
    let logger: Logger
    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await loop() }
    }

    /// One purge: synced applications and final checkouts older than `cutoff` (counts of each).
    static func purge(_ outbox: Outbox, olderThan cutoff: Date) -> Result<(applications: Int, checkouts: Int), any Error> {
        Result { (try outbox.purgeSynced(olderThan: cutoff), try outbox.purgeCheckouts(olderThan: cutoff)) }
    }

    func loop() async throws {
        while !Task.isCancelled {
            let outbox = self.outbox
            let cutoff = Date().addingTimeInterval(-retention)
            let purged = await executor.run { Self.purge(outbox, olderThan: cutoff) }
            switch purged {
            case let .success((applications, checkouts)) where applications + checkouts > 0:
                logger.info("purged synced applications and final checkouts",
                            metadata: ["applications": "\(applications)", "checkouts": "\(checkouts)"])
            case let .failure(e): logger.error("retention purge failed", metadata: ["error": "\(e)"])
            default: break
            }
            try await Task.sleep(for: .seconds(3600))
        }
    }
}

/// Logs the queue and sync status periodically, so the journal alone tells the story.
struct StatusLogService: Service {
    let interval: Duration
    let logger: Logger
    let snapshot: @Sendable () -> Logger.Metadata

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                logger.info("status", metadata: snapshot())
            }
        }
    }
}

/// The agent could not start a device or service (not a config error).
public struct AgentStartError: Error, Sendable, CustomStringConvertible {
    /// What failed and why.
    public var message: String
    /// The message.
    public var description: String { message }
}

/// The running agent: outbox, sync loop, control socket and lifecycle, wired from a config.
public final class AgentDaemon: Sendable {
    /// The configuration it runs with.
    public let config: AgentConfig
    /// The durable outbox.
    public let outbox: Outbox
    /// The sync engine, when central is configured.
    public let engine: SyncEngine?
    private let doorbell = Doorbell()
    private let writer = BlockingExecutor(label: "kiosk.outbox.writer")
    /// Seals payloads to central (nil when no `sync.sealing_key_file` is configured).
    private let sealer: ApplicationSealer?
    private let heartbeat = Heartbeat()
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let startedAt = Date()
    /// When the agent started.
    public var startedAtDate: Date { startedAt }
    /// The metrics the agent owns (the rest are read when rendered, see ``metricFamilies(now:)``).
    public let metrics: AgentMetrics
    private let lastEnqueueError = Mutex<String?>(nil)
    /// Live events (checkout transitions, terminal changes) for `watch` and the screen.
    public let events = EventBus()
    /// The payment terminal, when one is configured.
    public let terminal: (any TerminalPort)?
    /// The checkout flow, when a terminal is configured.
    public let checkouts: CheckoutRunner?
    /// The QR/barcode scanner, when one is configured.
    public let scanner: ScannerService?
    /// The shopper's screen (a loopback web page), when `screen.enabled`.
    public let screen: ShopperScreenServer?
    /// The liveness camera, when liveness.mode is "camera".
    public let camera: CameraService?

    /// Opens the state directory and the outbox (migrating it); devices are enumerated here later.
    public init(config: AgentConfig, logger: Logger = Logger(label: "kiosk.agent"), notifier: SystemdNotifier = SystemdNotifier()) throws {
        self.config = config
        self.logger = logger
        let metrics = AgentMetrics()
        self.metrics = metrics
        self.notifier = notifier
        // A bad key is a config error: refused before anything is created on disk.
        if let key = config.keyFile {
            try Self.refuseWorldReadable(key)
        }
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // Sealing on (a provisioned kiosk): checkouts are stored without what identifies the shopper.
        let redactor = (config.sealingKeyFile ?? "").isEmpty ? nil
            : try CheckoutRedactor.loadOrCreate(path: (config.stateDirectory as NSString).appendingPathComponent("redaction.salt"))
        outbox = try Outbox(path: config.databasePath, limits: config.outboxLimits, redactor: redactor,
                            logger: Logger(label: "kiosk.outbox"))
        if let aside = outbox.setAsideDatabasePath {
            logger.critical("the outbox database failed its integrity check and was set aside; running on a fresh one",
                            metadata: ["set_aside": "\(aside)"])
        }
        engine = config.centralURL.isEmpty ? nil
            : SyncEngine(outbox: outbox, configuration: config.syncConfiguration, logger: Logger(label: "kiosk.sync"))
        let port = try Self.makeTerminal(config)
        terminal = port
        // The signing key is needed by the checkout runner, or to sign sealed envelopes.
        let needsSigner = port != nil || !(config.sealingKeyFile ?? "").isEmpty
        let signer: AuthorizationSigner? = try needsSigner ? Self.loadOrCreateSigner(path: config.signingKeyPath, logger: logger) : nil
        sealer = try Self.makeSealer(config, signer: signer, logger: logger)
        if let port, let signer {
            let liveness: any LivenessStep
            var cameraService: CameraService?
            var preview: LivePreview?
            switch config.livenessMode {
            case "simulated": liveness = SimulatedLiveness(pause: .milliseconds(config.simulatedLivenessMillis))
            case "camera":
                let (step, service) = try Self.makeCameraLiveness(config, bus: events)
                liveness = step
                cameraService = service
                preview = step.preview
            default: liveness = UnavailableLiveness(reason: "no liveness camera configured (liveness.mode = none)")
            }
            camera = cameraService
            let metered = MeteredLiveness(inner: liveness, metrics: metrics)
            var settings = CheckoutRunner.Settings(context: try config.checkoutContext(), promptTimeout: .seconds(config.promptTimeoutSeconds))
            settings.answerGrace = .milliseconds(config.answerGraceMillis)
            let doorbell = self.doorbell
            let screenParts = try Self.makeScreen(config, preview: preview)
            if let screenParts { settings.context.consent = screenParts.consent }
            screen = screenParts?.server
            checkouts = CheckoutRunner(port: port, outbox: outbox, settings: settings, signer: signer, liveness: metered,
                                       bus: events, logger: Logger(label: "kiosk.checkout"), screen: screenParts?.answers,
                                       sealer: sealer, onEnqueued: { doorbell.ring() })
        } else {
            checkouts = nil
            screen = try Self.makeScreen(config)?.server
            camera = nil
        }
        scanner = try Self.makeScanner(config, bus: events)
    }

    /// The screen server, its answer source and the consent text recorded by default (the
    /// screen's first language), when `screen.enabled`; `preview` feeds the liveness screen's
    /// live camera picture (the camera liveness step's frames).
    static func makeScreen(_ config: AgentConfig, preview: (any ScreenPreviewSource)? = nil) throws -> (server: ShopperScreenServer, answers: ScreenAnswers, consent: ConsentText)? {
        guard config.screenEnabled else { return nil }
        let library: ConsentLibrary
        do {
            library = try ConsentLibrary.load(directory: config.screenConsentDir, id: config.consentID, version: config.consentVersion,
                                              defaultLanguage: config.screenLanguage)
        } catch {
            throw ConfigError(source: config.screenConsentDir, key: "screen.consent_dir", message: "\(error)")
        }
        guard let consent = library.text(language: config.screenLanguage),
              let (host, port) = ShopperScreenServer.Configuration.parseListen(config.screenListen) else {
            throw ConfigError(source: "config", key: "screen.listen", message: "must be host:port")
        }
        let hub = ScreenHub(calculator: InstalmentCalculator(months: config.screenInstalmentMonthsList,
                                                             monthlyFeeBasisPoints: config.screenFeeBasisPointsPerMonth),
                            resultSeconds: config.screenResultSeconds)
        let answers = ScreenAnswers(attached: { hub.isAttached() })
        let server = ShopperScreenServer(configuration: .init(host: host, port: port, allowNonLoopback: config.screenAllowNonLoopback,
                                                              lender: config.screenLender),
                                         hub: hub, consents: library, delegate: answers, preview: preview)
        return (server, answers, consent)
    }

    static func makeCameraLiveness(_ config: AgentConfig, bus: EventBus) throws -> (CameraLivenessStep, CameraService) {
        var thresholds = LivenessThresholds()
        if let file = config.thresholdsFile {
            do {
                thresholds = try LivenessThresholds.load(path: file)
            } catch {
                throw ConfigError(source: file, key: "liveness.thresholds_file", message: "\(error)")
            }
        }
        let engine: LivenessEngine
        do {
            engine = try LivenessEngine(cascadeDirectory: config.cascadeDirectory, thresholds: thresholds)
        } catch {
            throw ConfigError(source: config.cascadeDirectory, key: "liveness.cascade_dir",
                              message: "\(error) (Debian: apt-get install opencv-data)")
        }
        let log = Logger(label: "kiosk.camera")
        let supervisor: CameraSupervisor
        if let dir = config.cameraReplayDirectory {
            let fps = Double(config.cameraReplayFPS)
            if FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("idle")) {
                // A synthetic shopper (kioskctl dev synth-shopper): follows the instructions.
                let source: ShopperSource
                do {
                    source = try ShopperSource(directory: dir, bus: bus, fps: fps)
                } catch {
                    throw ConfigError(source: dir, key: "camera.replay_dir", message: "\(error)")
                }
                supervisor = CameraSupervisor(logger: log) { source }
            } else {
                do {
                    _ = try ReplaySource(directory: dir, fps: fps, loop: true)
                } catch {
                    throw ConfigError(source: dir, key: "camera.replay_dir", message: "\(error)")
                }
                supervisor = CameraSupervisor(logger: log) { try ReplaySource(directory: dir, fps: fps, loop: true) }
            }
        } else {
            var identity: CameraIdentity?
            if !config.cameraDevice.isEmpty {
                guard let id = CameraIdentity(config.cameraDevice) else {
                    throw ConfigError(source: "config", key: "camera.device", message: "\"\(config.cameraDevice)\" is not card@bus_info[#serial]")
                }
                identity = id
            }
            let profiles: [CameraProfile]
            if FileManager.default.fileExists(atPath: config.cameraProfilesDirectory) {
                do {
                    profiles = try CameraProfile.loadAll(directory: config.cameraProfilesDirectory)
                } catch {
                    throw ConfigError(source: config.cameraProfilesDirectory, key: "camera.profiles_dir", message: "\(error)")
                }
            } else {
                profiles = []
            }
            supervisor = CameraSupervisor.v4l2(identity: identity, profiles: profiles, logger: log)
        }
        let slot = FrameSlot()
        let step = CameraLivenessStep(engine: engine, supervisor: supervisor, slot: slot,
                                      timeLimit: TimeInterval(config.livenessTimeLimitSeconds), bus: bus, logger: Logger(label: "kiosk.liveness"),
                                      preview: config.screenEnabled ? LivePreview(slot: slot) : nil)
        return (step, CameraService(supervisor: supervisor, slot: slot))
    }

    static func makeScanner(_ config: AgentConfig, bus: EventBus) throws -> ScannerService? {
        guard let path = config.scannerProfile, !path.isEmpty else { return nil }
        let profile: ScannerProfile
        do {
            profile = try ScannerProfile.load(path: path)
        } catch {
            throw ConfigError(source: path, key: "scanner.profile", message: "\(error)")
        }
        do {
            let log = Logger(label: "kiosk.scanner")
            return ScannerService(scanner: try HIDScanner(profile: profile, serial: config.scannerSerial, logger: log), bus: bus, logger: log)
        } catch {
            throw AgentStartError(message: "cannot start the scanner driver: \(error)")
        }
    }

    static func makeTerminal(_ config: AgentConfig) throws -> (any TerminalPort)? {
        let log = Logger(label: "kiosk.terminal")
        switch config.terminalDriver {
        case "usb":
            let profile: DeviceProfile
            do {
                profile = try DeviceProfile.load(path: config.terminalProfile)
            } catch {
                throw ConfigError(source: config.terminalProfile, key: "terminal.profile", message: "\(error)")
            }
            do {
                return try USBTerminalPort(profile: profile, serial: config.terminalSerial, logger: log)
            } catch {
                throw AgentStartError(message: "cannot start the USB terminal driver: \(error)")
            }
        case "simulated":
            guard let scenario = TerminalScenario(rawValue: config.simulatedScenario) else {
                throw ConfigError(source: "config", key: "terminal.simulated_scenario",
                                  message: "unknown scenario \(config.simulatedScenario) (one of \(TerminalScenario.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            var options = TerminalScenarioOptions(payments: config.simulatedPayments, promptDelay: .milliseconds(config.simulatedAnswerMillis),
                                                  paymentInterval: .milliseconds(config.simulatedIntervalMillis))
            options.offerWait = .milliseconds(config.simulatedOfferWaitMillis)
            return try SimulatedTerminalPort(scenario: scenario, options: options, logger: log)
        default:
            return nil
        }
    }

    /// The sealer for `sync.sealing_key_file`, or nil (with one warning) when none is configured.
    static func makeSealer(_ config: AgentConfig, signer: AuthorizationSigner?, logger: Logger) throws -> ApplicationSealer? {
        guard let path = config.sealingKeyFile, !path.isEmpty, let signer else {
            logger.warning("no sync.sealing_key_file: applications are stored in the outbox unsealed (plaintext); development only")
            return nil
        }
        let sealer = try ApplicationSealer(keyFile: path, signer: signer)
        logger.info("applications are sealed to central's key", metadata: ["sealing_key_file": "\(path)"])
        return sealer
    }

    /// Loads the authorization signing key, creating a development key (mode 0600) when absent.
    static func loadOrCreateSigner(path: String, logger: Logger) throws -> AuthorizationSigner {
        if FileManager.default.fileExists(atPath: path) {
            try refuseWorldReadable(path, key: "agent.signing_key_file")
            do {
                return try AuthorizationSigner(pem: String(contentsOfFile: path, encoding: .utf8))
            } catch {
                throw ConfigError(source: path, key: "agent.signing_key_file", message: "not a P-256 private key in PEM: \(error)")
            }
        }
        let signer = AuthorizationSigner.generate()
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigError(source: path, key: "agent.signing_key_file", message: "cannot create: errno \(errno)") }
        let bytes = Array(signer.pemRepresentation.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(tmp, path) == 0 else {
            unlink(tmp)
            throw ConfigError(source: path, key: "agent.signing_key_file", message: "cannot write the new key: errno \(errno)")
        }
        logger.warning("created a development authorization signing key; provisioning replaces it", metadata: ["path": "\(path)", "key_id": "\(signer.keyID)"])
        return signer
    }

    static func refuseWorldReadable(_ path: String, key: String = "sync.key_file") throws {
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
              let mode = attrs[.posixPermissions] as? Int else {
            throw ConfigError(source: path, key: key, message: "cannot read the key")
        }
        if mode & 0o004 != 0 {
            throw ConfigError(source: path, key: key, message: "the key is world-readable (mode \(String(mode, radix: 8))); chmod 600 it")
        }
    }

    /// Runs until SIGTERM/SIGINT (graceful, bounded) or a service fails.
    public func run() async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let notifier = self.notifier
        let heartbeat = self.heartbeat
        let logger = self.logger
        if let engine {
            services.append(.init(service: SyncService(engine: engine, outbox: outbox, doorbell: doorbell,
                                                       idlePoll: config.syncConfiguration.idlePoll,
                                                       logger: Logger(label: "kiosk.sync"),
                                                       progress: { heartbeat.beat() })))
            services.append(.init(service: NetworkMonitorService(doorbell: doorbell, logger: Logger(label: "kiosk.net"))))
        } else {
            logger.warning("sync.url is empty: applications are queued but not sent")
        }
        // Before the checkout loop: services stop in reverse order, so the camera keeps
        // delivering frames until the checkout in progress is closed.
        if let camera {
            services.append(.init(service: camera))
        }
        if let terminal, let checkouts {
            // Devices are enumerated before READY=1 (a terminal already plugged in is opened now).
            try terminal.start()
            logger.info("payment terminal driver started", metadata: ["terminal": "\(terminal.name)"])
            services.append(.init(service: CheckoutService(runner: checkouts, logger: logger)))
        }
        if let scanner {
            scanner.scanner.start()
            services.append(.init(service: scanner))
        }
        if let screen {
            services.append(.init(service: ShopperScreenService(server: screen, bus: events, logger: Logger(label: "kiosk.screen"))))
        }
        let events = self.events
        let control = ControlService(path: config.controlSocket, group: config.controlGroup, logger: Logger(label: "kiosk.control"),
                                     watch: { events.subscribe() },
                                     onListening: { [outbox] in
                                         let depth = (try? outbox.stats().pending) ?? 0
                                         notifier.ready(status: "outbox open, \(depth) pending")
                                         heartbeat.markReady()
                                         logger.notice("ready", metadata: ["pending": "\(depth)"])
                                         // The services are up: give back what only their start touched.
                                         Self.releaseStartupPages(logger: logger, after: "services started")
                                     },
                                     handler: { [self] line in await self.handle(line) })
        services.append(.init(service: control))
        services.append(.init(service: RetentionService(outbox: outbox, retention: TimeInterval(config.retentionSyncedHours) * 3600,
                                                        executor: writer, logger: logger)))
        services.append(.init(service: LifecycleNotifierService(notifier: notifier, logger: logger)))
        if let path = config.metricsTextfile {
            services.append(.init(service: MetricsTextfileService(path: path, interval: .seconds(config.metricsIntervalSeconds),
                                                                  logger: logger, render: { [self] in self.metricsText() })))
        }
        if let listen = config.metricsListen, let (host, port) = ShopperScreenServer.Configuration.parseListen(listen) {
            services.append(.init(service: MetricsHTTPService(host: host, port: port, logger: logger,
                                                              render: { [self] in self.metricsText() })))
        }
        services.append(.init(service: StatusLogService(interval: .seconds(300), logger: logger) { [self] in self.statusMetadata() }))
        if let interval = SystemdNotifier.watchdogInterval() {
            let stale = max(interval, config.syncConfiguration.idlePoll * 3)
            services.append(.init(service: WatchdogService(notifier: notifier, interval: interval / 2, heartbeat: heartbeat,
                                                           staleAfter: stale, logger: logger)))
        }
        var groupConfig = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .seconds(20)
        groupConfig.maximumCancellationDuration = .seconds(5)
        // Config read, outbox migrated and recovered, devices enumerated: give back the pages of the
        // binary and its libraries that only this start-up touched (the loader's relocations,
        // parsing, migrations); what the services run is mapped again as they run it.
        Self.releaseStartupPages(logger: logger, after: "initialisation")
        let group = ServiceGroup(configuration: groupConfig)
        defer {
            terminal?.stop()
            events.finish()
        }
        try await group.run()
        try? outbox.checkpoint()
        logger.notice("stopped")
    }

    /// Drops the clean pages start-up mapped (``StartupPages``) and logs how much; never fails the daemon.
    static func releaseStartupPages(logger: Logger, after phase: String) {
        do {
            let released = try StartupPages.release()
            logger.info("released start-up pages", metadata: [
                "after": "\(phase)", "mappings": "\(released.mappings)", "kib": "\(released.residentBytes / 1024)"])
        } catch {
            logger.notice("start-up pages not released", metadata: ["after": "\(phase)", "error": "\(error)"])
        }
    }

    /// Enqueues an application durably (fsync'd) and wakes the sync loop; returns its sequence.
    public func submit(_ application: CreditApplication) async throws -> Int64 {
        let plain = try application.canonicalPayload()
        let payload = try sealer.map { try $0.seal(plain, id: application.id) } ?? plain
        let outbox = self.outbox
        let id = application.id
        let result = await writer.run { Result { try outbox.enqueue(id: id, payload: payload) } }
        switch result {
        case let .success(seq):
            lastEnqueueError.withLock { $0 = nil }
            doorbell.ring()
            return seq
        case let .failure(error):
            if case OutboxError.full = error { lastEnqueueError.withLock { $0 = "\(error)" } }
            throw error
        }
    }

    /// The status document served on the control socket.
    public func statusDocument() -> [String: Any] {
        var doc: [String: Any] = [
            "device_id": config.deviceID,
            "merchant_id": config.merchantID,
            "version": kioskAgentVersion,
            "pid": Int(getpid()),
            "uptime_s": Int(Date().timeIntervalSince(startedAt)),
            "database": ["path": config.databasePath, "set_aside": outbox.setAsideDatabasePath as Any? ?? NSNull()],
        ]
        var accepting = true
        var reason: String? = lastEnqueueError.withLock { $0 }
        if let stats = try? outbox.stats() {
            let unsynced = stats.pending + stats.inFlight + stats.rejected
            doc["queue"] = [
                "pending": stats.pending, "in_flight": stats.inFlight, "synced": stats.synced, "rejected": stats.rejected,
                "quarantined": stats.quarantined, "unsynced_bytes": stats.unsyncedBytes,
                "oldest_pending_age_s": stats.oldestPendingCreatedAt.map { max(0, Date().timeIntervalSince($0)) } as Any? ?? NSNull(),
            ]
            if unsynced >= config.outboxLimits.maxRows {
                reason = "outbox full: \(unsynced) unsynced applications (limit \(config.outboxLimits.maxRows))"
            } else if let full = try? outbox.admissionProblem() {
                reason = "outbox full: \(full)"
            }
        } else {
            reason = "outbox unreadable"
        }
        if reason == nil, config.requireLiveness, let checkouts, let why = checkouts.livenessUnavailableReason {
            reason = "liveness unavailable: \(why)"
        }
        if reason != nil { accepting = false }
        doc["offers"] = ["accepting": accepting, "reason": reason as Any? ?? NSNull()]
        if let terminal {
            doc["terminal"] = ["driver": terminal.name]
        }
        if let scanner {
            doc["scanner"] = scanner.status
        }
        if let camera {
            doc["camera"] = ["status": camera.supervisor.statusLine, "available": camera.supervisor.status.isAvailable,
                             "opens": camera.supervisor.openCount, "failures": camera.supervisor.failureCount]
        }
        if let checkouts {
            doc["checkouts"] = ["since_start": checkouts.outcomes, "stored": (try? outbox.checkoutCounts()) ?? [:]]
        }
        if let engine {
            let s = engine.status
            let iso = ISO8601DateFormatter()
            doc["sync"] = [
                "central_url": config.centralURL,
                "last_success_at": s.lastSuccessAt.map(iso.string(from:)) as Any? ?? NSNull(),
                "last_attempt_at": s.lastAttemptAt.map(iso.string(from:)) as Any? ?? NSNull(),
                "last_error": s.lastError as Any? ?? NSNull(),
                "consecutive_failures": s.consecutiveFailures,
                "next_attempt_at": s.nextAttemptAt.map(iso.string(from:)) as Any? ?? NSNull(),
                "batches": s.batches, "accepted": s.accepted, "duplicates": s.duplicates, "rejected": s.rejected, "failures": s.failures,
            ]
        } else {
            doc["sync"] = ["central_url": NSNull(), "enabled": false]
        }
        return doc
    }

    /// The status as log metadata (one journal line).
    func statusMetadata() -> Logger.Metadata {
        var m: Logger.Metadata = [:]
        if let s = try? outbox.stats() {
            m["pending"] = "\(s.pending)"
            m["rejected"] = "\(s.rejected)"
            m["quarantined"] = "\(s.quarantined)"
            m["oldest_pending_s"] = "\(s.oldestPendingCreatedAt.map { Int(Date().timeIntervalSince($0)) } ?? 0)"
        }
        if let st = engine?.status {
            m["last_success"] = "\(st.lastSuccessAt.map { ISO8601DateFormatter().string(from: $0) } ?? "never")"
            m["last_error"] = "\(st.lastError ?? "none")"
            m["consecutive_failures"] = "\(st.consecutiveFailures)"
        }
        return m
    }

    func handle(_ line: Data) async -> Data {
        func reply(_ obj: [String: Any]) -> Data {
            (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data("{\"ok\":false,\"error\":\"encoding failed\"}".utf8)
        }
        guard let obj = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let cmd = obj["cmd"] as? String else {
            return reply(["ok": false, "error": "expected a JSON object with a \"cmd\" field"])
        }
        switch cmd {
        case "ping":
            return reply(["ok": true, "pong": true])
        case "status":
            var doc = statusDocument()
            doc["ok"] = true
            return reply(doc)
        case "metrics":
            return reply(["ok": true, "text": metricsText()])
        case "terminal_ping":
            guard let terminal else { return reply(["ok": false, "error": "no terminal configured (terminal.driver = none)"]) }
            let (ok, detail) = await Self.ping(terminal)
            return reply(["ok": ok, ok ? "detail" : "error": detail, "driver": terminal.name])
        case "submit":
            guard config.allowSubmit else {
                return reply(["ok": false, "error": "submit is disabled (control.allow_submit = false)"])
            }
            guard let appObj = obj["application"],
                  let data = try? JSONSerialization.data(withJSONObject: appObj) else {
                return reply(["ok": false, "error": "submit needs an \"application\" object"])
            }
            do {
                let app = try CanonicalJSON.decode(CreditApplication.self, from: data)
                let seq = try await submit(app)
                return reply(["ok": true, "id": app.id, "sequence": seq])
            } catch let v as PCIViolation {
                logger.error("application refused by the PCI guard", metadata: ["violation": "\(v)"])
                return reply(["ok": false, "error": v.description, "code": "pci_violation"])
            } catch let e as DecodingError {
                // Decoding errors can echo field values; report only the path.
                return reply(["ok": false, "error": "application is not valid: \(Self.describe(e))", "code": "invalid"])
            } catch let e as ApplicationValidationError {
                return reply(["ok": false, "error": e.description, "code": "invalid"])
            } catch let e as OutboxError {
                if case .full = e {
                    return reply(["ok": false, "error": e.description, "code": "outbox_full"])
                }
                if case .duplicateID = e {
                    return reply(["ok": false, "error": e.description, "code": "duplicate"])
                }
                return reply(["ok": false, "error": e.description, "code": "storage"])
            } catch {
                return reply(["ok": false, "error": "\(error)", "code": "error"])
            }
        case "checkouts":
            let limit = obj["limit"] as? Int ?? 50
            let outbox = self.outbox
            switch await writer.run({ Result { try outbox.recentCheckouts(limit: limit) } }) {
            case let .success(r):
                let items = r.checkouts.compactMap { c -> Any? in
                    (try? CanonicalJSON.encode(c)).flatMap { try? JSONSerialization.jsonObject(with: $0) }
                }
                return reply(["ok": true, "items": items, "corrupt": r.corrupt.map(\.description)])
            case let .failure(e): return reply(["ok": false, "error": "\(e)"])
            }
        case "queue_list":
            let states = (obj["states"] as? [String])?.compactMap(OutboxState.init(rawValue:))
            let limit = obj["limit"] as? Int ?? 100
            let outbox = self.outbox
            let rows = await writer.run { Result { try outbox.list(states: states.map(Set.init), limit: limit) } }
            switch rows {
            case let .success(records): return reply(["ok": true, "items": records.map(Self.summary)])
            case let .failure(e): return reply(["ok": false, "error": "\(e)"])
            }
        case "queue_show":
            guard let id = obj["id"] as? String else { return reply(["ok": false, "error": "queue_show needs an id"]) }
            let outbox = self.outbox
            switch await writer.run({ Result { try outbox.record(id: id) } }) {
            case let .success(record?):
                var s = Self.summary(record)
                // A sealed row holds the envelope only: the agent itself cannot read it back.
                s["sealed"] = SealedEnvelope.decodeIfSealed(record.payload) != nil
                s["payload"] = String(decoding: record.payload, as: UTF8.self)
                return reply(["ok": true, "item": s])
            case .success(nil): return reply(["ok": false, "error": "no application with id \(id)", "code": "not_found"])
            case let .failure(e): return reply(["ok": false, "error": "\(e)"])
            }
        case "queue_retry":
            guard let id = obj["id"] as? String else { return reply(["ok": false, "error": "queue_retry needs an id"]) }
            let outbox = self.outbox
            switch await writer.run({ Result { try outbox.retry(id: id) } }) {
            case .success:
                doorbell.ring()
                return reply(["ok": true, "id": id])
            case let .failure(e): return reply(["ok": false, "error": "\(e)"])
            }
        case "queue_purge_synced":
            let outbox = self.outbox
            let days = obj["older_than_s"] as? Double ?? 0
            switch await writer.run({ Result { try outbox.purgeSynced(olderThan: Date().addingTimeInterval(-days)) } }) {
            case let .success(n): return reply(["ok": true, "purged": n])
            case let .failure(e): return reply(["ok": false, "error": "\(e)"])
            }
        default:
            return reply(["ok": false, "error": "unknown command \(cmd)"])
        }
    }

    /// One PING through the agent's own link (for `kioskctl doctor` while the agent holds the terminal).
    static func ping(_ terminal: any TerminalPort) async -> (Bool, String) {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let t0 = ContinuousClock.now
                do {
                    let reply = try terminal.withLink { try $0.request(.ping, timeout: .seconds(3)) }
                    let d = ContinuousClock.now - t0
                    let ms = Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
                    guard case .pong(let info) = reply.message else {
                        continuation.resume(returning: (false, "PING answered with \(reply.message.type)"))
                        return
                    }
                    continuation.resume(returning: (true, String(format: "serial %@, model %@, firmware %@, %.1f ms",
                                                                 info.serial, info.model, info.firmware, ms)))
                } catch {
                    continuation.resume(returning: (false, "\(error)"))
                }
            }
        }
    }

    static func summary(_ r: OutboxRecord) -> [String: Any] {
        let iso = ISO8601DateFormatter()
        return [
            "sequence": r.sequence, "id": r.id, "state": r.state.rawValue, "attempts": r.attempts,
            "size": r.payload.count, "payload_sha256": r.payloadSHA256,
            "created_at": iso.string(from: r.createdAt), "next_attempt_at": iso.string(from: r.nextAttemptAt),
            "synced_at": r.syncedAt.map(iso.string(from:)) as Any? ?? NSNull(),
            "last_error": r.lastError as Any? ?? NSNull(), "reject_reason": r.rejectReason as Any? ?? NSNull(),
        ]
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case let .keyNotFound(key, ctx): return "missing field \((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx), let .dataCorrupted(ctx):
            return "bad field \(ctx.codingPath.map(\.stringValue).joined(separator: "."))"
        @unknown default: return "undecodable"
        }
    }
}
