// vm-selfcheck: device self-checks that run inside the kiosk-agent test VM (Devices/testvm)
// against the kernel's own drivers: vivid for V4L2, dummy_hcd + FunctionFS for USB.
// Each prints an "OK <check>: ..." or "FAIL <check>: ..." line and exits non-zero on failure.
#if canImport(Glibc)
import KioskSys
import Glibc
#endif

let usage = """
    usage: vm-selfcheck COMMAND [--option value ...]
      v4l2-loop [--output /dev/video1] [--capture /dev/video0] [--input 1] [--timeout 20] [--matches 3]
          write a 640x480 RGB24 pattern to the output, capture it back byte-identical (vivid loop)
      usb-ffs-device --ffs /dev/ffs-NAME [--prefix ECHO:] [--seconds 120]
          play a bulk echo device through FunctionFS (until SIGTERM or the time limit)
      usb-host [--vid 0x1209] [--pid 0x4b41] [--count 200] [--timeout-ms 1000] [--wait-ms 10000]
          libusb request/response exchanges with the echo device; latency median/p99
      usb-hotplug [--vid 0x1209] [--pid 0x4b41] [--timeout 30]
          libusb hotplug callback: exit 0 after one arrival and one departure
    """

func run() -> Int32 {
    let args = CommandLine.arguments
    guard args.count >= 2 else {
        say(usage)
        return 2
    }
    let command = args[1]
    do {
        let options = try Options(args.dropFirst(2))
        switch command {
        case "v4l2-loop": return try runV4L2Loop(options)
        case "usb-ffs-device": return try runUSBFFSDevice(options)
        case "usb-host": return try runUSBHost(options)
        case "usb-hotplug": return try runUSBHotplug(options)
        case "-h", "--help", "help":
            say(usage)
            return 0
        default:
            say(usage)
            return 2
        }
    } catch let error as UsageError {
        say("vm-selfcheck \(command): \(error)")
        return 2
    } catch {
        say("FAIL \(command): \(error)")
        return 1
    }
}

exit(run())
