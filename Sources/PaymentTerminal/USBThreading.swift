// Threads and a condition lock for device I/O. Blocking libusb and FunctionFS calls run on these
// dedicated POSIX threads, never on Swift's cooperative pool.
#if canImport(Glibc)
import KioskSys
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CKioskShims
import Synchronization

/// A mutex with a condition variable (pthread), for threads that block waiting for device data.
package final class USBConditionLock: @unchecked Sendable {
    // Heap-allocated: pthread objects must not move.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held.
    package func locked<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// With the mutex held: waits until signalled or `deadline` (monotonic nanoseconds) passes.
    /// Returns false on timeout. Callers re-check their condition in a loop.
    package func wait(untilNanos deadline: UInt64) -> Bool {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        return pthread_cond_timedwait(cond, mutex, &ts) != ETIMEDOUT
    }

    /// With the mutex held: waits until signalled.
    package func wait() {
        pthread_cond_wait(cond, mutex)
    }

    /// Wakes every waiter (call with or without the mutex held).
    package func broadcast() {
        pthread_cond_broadcast(cond)
    }
}

/// A POSIX thread of its own (joinable), for event loops and blocking device I/O.
package final class USBThread: Sendable {
    private final class Body: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let thread: pthread_t
    private let finished = Flag()

    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Starts `body` on a new thread named `name` (at most 15 bytes show in `ps`/`top`).
    /// `unblocking` signals are unblocked in the thread (it inherits its creator's mask, and
    /// dispatch worker threads block most signals): pass the one ``interruptAndJoin(signal:)`` uses.
    package init(name: String, unblocking signals: [Int32] = [], _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        let finished = self.finished
        let context = Unmanaged.passRetained(Body {
            _ = ka_usb_set_thread_name(name)
            if !signals.isEmpty {
                var set = sigset_t()
                sigemptyset(&set)
                for signal in signals { sigaddset(&set, signal) }
                _ = pthread_sigmask(SIG_UNBLOCK, &set, nil)
            }
            body()
            finished.value.store(true, ordering: .releasing)
        }).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw SystemCallError(call: "pthread_create(\(name))", code: rc)
        }
        self.thread = thread
    }

    /// Whether the thread's body has returned.
    package var isFinished: Bool { finished.value.load(ordering: .acquiring) }

    /// Sends `signal` to the thread (before ``join()``): with a handler installed without
    /// SA_RESTART, a blocking system call of the thread returns EINTR.
    package func signal(_ signal: Int32) {
        _ = pthread_kill(thread, signal)
    }

    /// Sends `signal` every 20 ms until the thread's body has returned, then joins it: for
    /// threads blocked in system calls that only a signal ends (the thread must check its stop
    /// condition after EINTR). A signal sent between two calls is lost, hence the repetition.
    package func interruptAndJoin(signal: Int32) {
        while !isFinished {
            self.signal(signal)
            sleepNanos(20_000_000)
        }
        join()
    }

    /// Waits for the thread to end. Call once, never from the thread itself.
    package func join() {
        _ = pthread_join(thread, nil)
    }
}

/// Monotonic clock in nanoseconds.
package func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

package func sleepNanos(_ nanos: UInt64) {
    var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
}

extension Duration {
    /// Whole nanoseconds, clamped to 0...UInt64.max / 2 (negative durations are 0).
    package var clampedNanos: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 { return 0 }
        let limit = UInt64.max / 4
        let s = UInt64(seconds)
        if s >= limit / 1_000_000_000 { return limit }
        return s * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Milliseconds for a libusb timeout, rounded up, at least 1 (libusb reads 0 as "forever").
    package var libusbMillis: UInt32 {
        let ms = (clampedNanos + 999_999) / 1_000_000
        return UInt32(clamping: max(1, ms))
    }
}
