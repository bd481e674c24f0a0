# kiosk-agent — the two commands a newcomer runs: `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
SWIFT_BUILD_FLAGS ?=
BIN_DEBUG := .build/debug
BIN_RELEASE := .build/release
# The system Python: the Debian python3-selenium/python3-pytest packages live there.
PYTHON ?= /usr/bin/python3

.PHONY: all deps build build-release test test-unit test-browser test-systemd test-udev deb deb-check test-terminal-usb test-checkout-usb test-camera-vivid test-liveness-vivid test-chaos chaos check-arm64-headers demo bench fuzz clean help
all: build

help:
	@echo "make demo   - install deps if missing, build, run a whole store-and-forward demo on loopback"
	@echo "make test   - install deps if missing, build, run every test (unit, end-to-end, test VM)"
	@echo "make test-vm - only the real-kernel test VM self-checks (vivid, dummy_hcd + FunctionFS, power cut, network)"
	@echo "make test-browser - the shopper's screen in headless Chromium (screenshots in .cache/browser-artifacts)"
	@echo "make chaos  - the reliability campaign: 20 power cuts in the VM, 1,000+ network faults; prints its table"
	@echo "make bench  - release build, print benchmark ratios against peers measured in the same run"
	@echo "make deb    - release build and the kiosk's .deb in .build/deb; make deb-check checks it"
	@echo "make deps   - install the Debian packages the build and tests need (apt-get)"

deps:
	@Provisioning/deps.sh

build: deps
	$(SWIFT) build $(SWIFT_BUILD_FLAGS)

# As shipped: the .deb's binaries are built with the Swift runtime linked in (make bench measures those).
build-release: deps
	$(SWIFT) build -c release --static-swift-stdlib $(SWIFT_BUILD_FLAGS)

# Unit tests in parallel, then the end-to-end tests one at a time: they spawn the built binaries
# and wait for them, and a test waiting on a process holds one of the cooperative pool's threads
# (two on a 2-core runner), starving in-process servers and other suites run beside it.
test-unit: deps
	Provisioning/fetch-faces.sh
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	KIOSK_BIN_DIR=$(CURDIR)/$(BIN_DEBUG) $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --skip EndToEndTests
	KIOSK_BIN_DIR=$(CURDIR)/$(BIN_DEBUG) $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --filter EndToEndTests --no-parallel

test: deps test-unit test-browser test-systemd test-udev test-vm test-terminal-usb test-checkout-usb test-camera-vivid test-liveness-vivid test-chaos fuzz
	@echo "make test: all suites passed"

# The shopper's screen in a real headless Chromium against the real agent and central (pytest +
# selenium), camera liveness on a synthetic shopper made from a public-domain photo (fetch-faces.sh);
# screenshots of every screen in both orientations go to .cache/browser-artifacts/.
test-browser: deps
	Provisioning/fetch-faces.sh
	$(SWIFT) build --product kiosk-agent $(SWIFT_BUILD_FLAGS)
	$(SWIFT) build --product kiosk-central $(SWIFT_BUILD_FLAGS)
	$(SWIFT) build --product kioskctl $(SWIFT_BUILD_FLAGS)
	KIOSK_BIN_DIR=$(CURDIR)/$(BIN_DEBUG) timeout 900 $(PYTHON) -m pytest -v -p no:cacheprovider Tests/browser

# The USB payment-terminal path on the kernel's own drivers: FunctionFS emulator on dummy_hcd,
# libusb transport, hotplug reconnect after an unplug (see Devices/testvm/tests/terminal-usb.sh).
test-terminal-usb: deps testvm-setup
	Devices/testvm/tests/terminal-usb-vm.sh

# The whole checkout through the real kiosk-agent on the emulated USB terminal in the test VM:
# CHECKOUT_PAYMENTS payments (default 100) → consent on the terminal → outbox → kiosk-central
# on the host; every completed checkout is at central exactly once (checkout-usb.sh).
test-checkout-usb: deps testvm-setup
	Devices/testvm/tests/checkout-usb-vm.sh $(or $(CHECKOUT_PAYMENTS),100)

# The camera on the kernel's vivid driver through libv4l2 in the test VM: list by identity,
# snapshot, 60-frame fps test, output->capture feed loop, unplug/reopen (camera-vivid.sh).
test-camera-vivid: deps testvm-setup
	Devices/testvm/tests/camera-vivid-vm.sh

# Face liveness end to end on the kernel's vivid camera: the real kiosk-agent reads vivid's HDMI
# capture through libv4l2 while a synthetic shopper (live, then a static photo, then a print)
# is fed into vivid's output loop, following the agent's random challenge (liveness-vivid.sh).
# make test runs live + static; LIVENESS_KINDS="live static print" adds the print attack.
test-liveness-vivid: deps testvm-setup
	LIVENESS_KINDS="$(or $(LIVENESS_KINDS),live static)" Devices/testvm/tests/liveness-vivid-vm.sh

# Static checks of the systemd units, sysusers.d and tmpfiles.d (systemd-analyze verify clean,
# security exposure <= 2.0 for kiosk-agent, users/owners/modes in a scratch root; ~1 s).
test-systemd: deps
	systemd/check.sh

# Devices/udev/*.rules on a real udevd in the test VM (vivid camera, a dummy_hcd gadget as terminal
# and scanner, a KIOSK-ENROL disk): links, group, access as kiosk-agent vs nobody (tests/udev.sh; ~1-2 min).
test-udev: deps testvm-setup
	Devices/testvm/tests/udev-vm.sh

# The kiosk's Debian package (release build, --static-swift-stdlib; minutes, so not in make test)
# into .build/deb/, and its checks: contents, lintian, install/upgrade/remove/purge in a scratch root.
deb: deps
	Provisioning/deb.sh

deb-check:
	Provisioning/deb-check.sh

demo: deps build
	@Provisioning/demo.sh $(BIN_DEBUG)

bench: deps build-release
	@Provisioning/bench.sh $(BIN_RELEASE)

# libFuzzer run of the terminal frame/message decoder (FUZZ_SECONDS, default 20).
# The reliability campaign (Devices/chaos/chaos.sh): power cuts in the test VM, network faults;
# prints the table the README carries. test-chaos is its short version inside make test.
chaos: deps testvm-setup
	Devices/chaos/chaos.sh

test-chaos: deps testvm-setup
	Devices/chaos/chaos.sh --short

# The C shims' struct layout asserts compiled for aarch64 (needs Debian's arm64 cross headers).
check-arm64-headers:
	Provisioning/check-arm64-headers.sh

fuzz: deps
	Devices/fuzz-terminal.sh $(or $(FUZZ_SECONDS),20)

include Devices/testvm/testvm.mk

clean:
	rm -rf .build .cache
