"""Fixtures for the shopper-screen browser tests: kiosk-central + kiosk-agent (simulated terminal
whose prompts the screen answers; camera liveness on a synthetic shopper made from the
public-domain astronaut photo, as in `make demo`: the agent's camera replays its frames and the
shopper follows the agent's challenge) and a headless Chromium on the page.

Every process is bounded: waits poll with deadlines, and the finalizers stop the agent, central
and the browser (SIGTERM, then SIGKILL after 10 s)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("KIOSK_BIN_DIR", ROOT / ".build" / "debug"))
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / ".cache" / "browser-artifacts"))
PAYMENTS = 3
PAYMENT_INTERVAL_MS = 9000
RESULT_S = 3
LIVENESS_TIME_LIMIT_S = 30
DEVICE = "kiosk-screen-0001"
# Written by Provisioning/fetch-faces.sh (make test-browser runs it).
FACE = ROOT / ".cache" / "faces" / "astronaut.pgm"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Stack:
    def __init__(self, work: Path):
        self.work = work
        self.procs = []
        self.screen_port = free_port()
        self.url = f"http://127.0.0.1:{self.screen_port}/"

    def start(self):
        w = self.work
        subprocess.run([str(ROOT / "Provisioning/dev-pki.sh"), str(w / "pki"), DEVICE], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, timeout=120)
        central = subprocess.Popen(
            [str(BIN / "kiosk-central"), "serve", "--listen", "127.0.0.1:0", "--port-file", str(w / "central.port"),
             "--cert", str(w / "pki/server.pem"), "--key", str(w / "pki/server.key"), "--ca", str(w / "pki/ca.pem"),
             "--db", str(w / "central.sqlite")], stderr=open(w / "central.log", "w"), cwd=ROOT)
        self.procs.append(central)
        port = wait_for(lambda: (w / "central.port").exists() and (w / "central.port").read_text().strip(), 30, "central's port")
        # The synthetic shopper in front of the agent's (replayed) camera.
        assert FACE.exists(), f"{FACE} missing: run Provisioning/fetch-faces.sh (make test-browser does)"
        subprocess.run([str(BIN / "kioskctl"), "dev", "synth-shopper", "--photo", str(FACE), "--kind", "live",
                        "--out", str(w / "shopper"), "--count", "16", "--width", "640", "--height", "480"],
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=300)
        (w / "agent.toml").write_text(f"""
[agent]
device_id = "{DEVICE}"
merchant_id = "merchant-demo"
state_dir = "{w}/state"
[outbox]
min_free_disk_bytes = 0
[sync]
url = "https://localhost:{port}"
ca_file = "{w}/pki/ca.pem"
cert_file = "{w}/pki/devices/{DEVICE}.pem"
key_file = "{w}/pki/devices/{DEVICE}.key"
idle_poll_ms = 500
[control]
socket = "{w}/control.sock"
[terminal]
driver = "simulated"
simulated_scenario = "screen"
simulated_payments = {PAYMENTS}
simulated_interval_ms = {PAYMENT_INTERVAL_MS}
[checkout]
cooldown_s = 0
prompt_timeout_s = 60
answer_grace_ms = 500
[liveness]
mode = "camera"
time_limit_s = {LIVENESS_TIME_LIMIT_S}
[camera]
replay_dir = "{w}/shopper"
replay_fps = 15
[screen]
enabled = true
listen = "127.0.0.1:{self.screen_port}"
language = "zh-Hans"
consent_dir = "{ROOT}/Provisioning/consent"
result_s = {RESULT_S}
lender = "Sample Lender"
""")
        agent = subprocess.Popen([str(BIN / "kiosk-agent"), "--config", str(w / "agent.toml")],
                                 stderr=open(w / "agent.log", "w"), cwd=ROOT)
        self.procs.append(agent)
        self.agent = agent
        wait_for(lambda: self.screen_up(), 30, "the screen server")

    def screen_up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.screen_port), timeout=1):
                return True
        except OSError:
            return False

    def central_stored(self):
        out = subprocess.run([str(BIN / "kiosk-central"), "stats", "--db", str(self.work / "central.sqlite"), "--json"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return json.loads(out)["stored"]

    def central_payloads(self):
        out = subprocess.run([str(BIN / "kiosk-central"), "list", "--db", str(self.work / "central.sqlite"), "--json"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return [json.loads(a["payload"]) for a in json.loads(out)["applications"]]

    def checkouts(self):
        out = subprocess.run([str(BIN / "kioskctl"), "checkouts", "--json", "--socket", str(self.work / "control.sock")],
                             capture_output=True, text=True, timeout=30)
        return out.stdout

    def stop(self):
        for p in reversed(self.procs):
            stop(p)


@pytest.fixture(scope="session")
def stack():
    work = Path(tempfile.mkdtemp(prefix="kiosk-screen."))
    s = Stack(work)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        keep = ARTIFACTS / "logs"
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("agent.log", "central.log", "agent.toml"):
            if (work / name).exists():
                shutil.copy(work / name, keep / name)
        shutil.rmtree(work, ignore_errors=True)


def make_driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1080,1920",
              "--hide-scrollbars", "--lang=zh-CN",
              # The network is "cut": any request that is not to loopback goes to a dead proxy and fails.
              "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>;127.0.0.1;localhost",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--disable-default-apps", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    return d


@pytest.fixture(scope="session")
def browser(stack):
    d = make_driver()
    try:
        yield d
    finally:
        d.quit()
