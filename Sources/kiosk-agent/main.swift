import Foundation
import KioskAgent
import Logging

/// kiosk-agent --config FILE: the kiosk's daemon.
var configPath: String? = nil
var args = CommandLine.arguments.dropFirst()
while let a = args.first {
    args = args.dropFirst()
    switch a {
    case "--config", "-c":
        configPath = args.first
        args = args.dropFirst()
    case "--version":
        print(kioskAgentVersion)
        exit(0)
    case "--help", "-h":
        print("usage: kiosk-agent [--config FILE]\n  Environment overrides: KIOSK_AGENT_<TABLE>_<KEY>=value (e.g. KIOSK_AGENT_SYNC_URL).")
        exit(0)
    default:
        FileHandle.standardError.write(Data("kiosk-agent: unknown argument \(a) (see --help)\n".utf8))
        exit(2)
    }
}

let config: AgentConfig
do {
    config = try AgentConfig.load(path: configPath)
} catch {
    FileHandle.standardError.write(Data("kiosk-agent: config error: \(error)\n".utf8))
    exit(78)  // EX_CONFIG: systemd's RestartPreventExitStatus keeps a broken config from looping
}
JournalLogHandler.bootstrap(level: Logger.Level(rawValue: config.logLevel) ?? .info)
let logger = Logger(label: "kiosk.agent")
do {
    let daemon = try AgentDaemon(config: config, logger: logger)
    try await daemon.run()
} catch let error as ConfigError {
    logger.critical("kiosk-agent config error", metadata: ["error": "\(error)"])
    exit(78)
} catch {
    logger.critical("kiosk-agent failed", metadata: ["error": "\(error)"])
    exit(1)
}
