# Devices/testvm/testvm.mk: make targets of the kiosk-agent test VM.
# Include it from the top-level Makefile (run make from the repository root):
#     include Devices/testvm/testvm.mk
#
#   make testvm-setup   download/unpack Debian's kernel and udev, build vmlinux + initramfs
#                       (idempotent; cached in .cache/testvm; ~0.1 s when up to date)
#   make test-vm        build vm-selfcheck and run every VM self-check (2 boots, < 1 min here)
#   make testvm-run SCRIPT=path [ARGS="..."] [TESTVM_OPTS="..."]   one guest script in the VM

TESTVM_DIR ?= Devices/testvm

.PHONY: testvm-setup test-vm testvm-run

testvm-setup:
	$(TESTVM_DIR)/setup.sh

test-vm: testvm-setup
	$(TESTVM_DIR)/selftest.sh

testvm-run: testvm-setup
	@test -n "$(SCRIPT)" || { echo "usage: make testvm-run SCRIPT=path [ARGS='...'] [TESTVM_OPTS='--timeout 120']"; exit 2; }
	$(TESTVM_DIR)/run.sh $(TESTVM_OPTS) -- $(SCRIPT) $(ARGS)
