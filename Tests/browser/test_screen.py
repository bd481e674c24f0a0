"""The shopper's screen in a real headless Chromium, against the real kiosk-agent and kiosk-central.

Order matters (one agent, its simulated terminal plays the payments one after another):
  payment 1: read the offer, choose 12 months, scroll the consent to the end, accept -> camera
             liveness: the challenge on the page and the live (mirrored) preview of the synthetic
             shopper -> reference; the application, with the chosen plan, reaches kiosk-central;
             the page returns to idle after the timeout.
  payment 2: decline -> polite result, no new application; back to idle.
  payment 3: switch to English, accept: the application records the English text's hash.
Then: no request left loopback; the server refuses unexpected Host/Origin and non-loopback clients.
Screenshots of every screen in portrait (1080x1920) and landscape (1920x1080) go to .cache/browser-artifacts/."""
import hashlib
import http.client
import json
import socket
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from conftest import ARTIFACTS, LIVENESS_TIME_LIMIT_S, PAYMENT_INTERVAL_MS, RESULT_S, ROOT, wait_for

ORIENTATIONS = {"portrait": (1080, 1920), "landscape": (1920, 1080)}
SHOTS = ARTIFACTS / "screens"
CHALLENGES_ZH = ("请眨眼", "请向左转头", "请向右转头", "请靠近一点")
CHALLENGES_EN = ("Blink", "Turn your head left", "Turn your head right", "Come a little closer")


def preview_width(d):
    return d.execute_script("const i = document.getElementById('preview-img'); return i.complete && i.getAttribute('src') ? i.naturalWidth : 0")


def fetch(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status, dict(r.getheaders())
    finally:
        c.close()


def screen(d):
    return d.execute_script("return document.body.dataset.screen || ''")


def wait_screen(d, name, timeout):
    wait_for(lambda: screen(d) == name, timeout, f"the {name} screen (now {screen(d)!r})", interval=0.05)


def set_viewport(d, w, h):
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})


def shoot(d, name, first="portrait"):
    """Saves the current screen in both orientations, `first` first (a short-lived screen such as
    the liveness check is caught in the orientation it is shown in); ends in portrait."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for o in sorted(ORIENTATIONS, key=lambda o: o != first):
        w, h = ORIENTATIONS[o]
        set_viewport(d, w, h)
        time.sleep(0.15)
        d.save_screenshot(str(SHOTS / f"{name}-{o}.png"))
    set_viewport(d, *ORIENTATIONS["portrait"])


def visible_text(d):
    return d.find_element(By.TAG_NAME, "body").text


def scroll_consent_to_end(d, shot):
    """In landscape the text overflows its box: Accept stays disabled until it is scrolled to the end."""
    accept = d.find_element(By.ID, "accept")
    box = d.find_element(By.ID, "consent-text")
    assert d.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight + 4", box), "the text should overflow in landscape"
    assert not accept.is_enabled(), "Accept must stay disabled until the consent is scrolled to the end"
    shoot(d, shot)
    d.execute_script("const b = document.getElementById('consent-text'); b.scrollTop = b.scrollHeight;"
                     "b.dispatchEvent(new Event('scroll'));")
    wait_for(lambda: accept.is_enabled(), 5, "Accept enabled after scrolling")


def payment_wait():
    return PAYMENT_INTERVAL_MS / 1000 + 30


@pytest.fixture(scope="module")
def page(stack, browser):
    set_viewport(browser, *ORIENTATIONS["portrait"])
    browser.get(stack.url)
    wait_for(lambda: browser.execute_script("return document.body.dataset.connected") == "yes", 15, "the event stream")
    wait_screen(browser, "idle", 10)
    shoot(browser, "1-idle")
    return browser


def test_offer_consent_accept_reaches_central(stack, page):
    d = page
    wait_screen(d, "offer", payment_wait())
    assert d.find_element(By.ID, "amount").text == "¥1299.00"
    plans = d.find_elements(By.CSS_SELECTOR, "#plans .plan")
    assert len(plans) == 3
    assert "12" in plans[2].text and "¥" in plans[2].text
    assert "Sample Lender" in d.find_element(By.ID, "lender").text
    shoot(d, "2-offer")
    plans[2].click()
    set_viewport(d, *ORIENTATIONS["landscape"])
    d.find_element(By.ID, "to-consent").click()
    wait_screen(d, "consent", 5)
    wait_for(lambda: "样本" in d.find_element(By.ID, "consent-text").text, 10, "the Chinese consent text")
    assert "2026.11-sample" in d.find_element(By.ID, "consent-version").text
    scroll_consent_to_end(d, "3-consent-zh")
    d.find_element(By.ID, "accept").click()
    wait_screen(d, "liveness", 10)
    # The camera step's random challenge, in Chinese.
    challenge = wait_for(lambda: d.find_element(By.ID, "challenge").text in CHALLENGES_ZH and d.find_element(By.ID, "challenge").text,
                         10, "a camera liveness challenge")
    # The live preview: frames of the same camera the check reads, shown mirrored, never cached.
    wait_for(lambda: preview_width(d) > 0, 15, "the camera preview")
    assert preview_width(d) <= 320
    assert d.execute_script("return getComputedStyle(document.getElementById('preview-img')).transform").startswith("matrix(-1")
    shoot(d, "4-liveness")
    status, headers = fetch(stack.screen_port, "/preview.bmp")
    assert status in (200, 404)  # 404 once the check has ended
    if status == 200:
        assert headers.get("Cache-Control") == "no-store" and headers.get("Content-Type") == "image/bmp"
    wait_screen(d, "result", LIVENESS_TIME_LIMIT_S + 15)
    ref = d.find_element(By.ID, "result-reference").text
    assert len(ref) == 9 and ref[4] == "-", (ref, d.find_element(By.ID, "result-title").text, challenge)
    shoot(d, "5-result-completed")
    wait_for(lambda: stack.central_stored() == 1, 60, "the application at kiosk-central")
    # No preview outside a liveness check.
    assert fetch(stack.screen_port, "/preview.bmp")[0] == 404
    # The plan chosen on the offer is in the application central stored.
    app = stack.central_payloads()[0]
    assert app["liveness"]["decision"] == "pass", app["liveness"]
    assert app["plan"] == {"instalments": 12, "instalment_minor": 11604, "last_instalment_minor": 11609, "fee_minor": 9353,
                           "total_minor": 139253, "currency": "CNY", "lender": "Sample Lender"}, app.get("plan")
    # The page returns to idle after the timeout and keeps nothing of the shopper.
    wait_screen(d, "idle", RESULT_S + 10)
    body = visible_text(d)
    assert ref not in body and "1299" not in body
    assert d.execute_script("return document.getElementById('consent-text').textContent") == ""
    out = stack.checkouts()
    assert "kiosk_screen" in out, out[:2000]
    assert json.loads(out)["items"][0]["plan"]["instalments"] == 12


def test_decline_makes_no_application(stack, page):
    d = page
    wait_screen(d, "offer", payment_wait())
    d.find_element(By.ID, "to-consent").click()
    wait_screen(d, "consent", 5)
    wait_for(lambda: d.find_element(By.ID, "consent-text").text != "", 10, "the consent text")
    d.find_element(By.ID, "decline").click()
    wait_screen(d, "result", 15)
    assert d.find_element(By.ID, "result-title").text == "您已拒绝分期"
    shoot(d, "6-result-declined")
    wait_screen(d, "idle", RESULT_S + 10)
    time.sleep(2)  # the sync loop polls every 0.5 s: a wrongly queued application would have arrived
    assert stack.central_stored() == 1


def test_english_consent_is_the_one_recorded(stack, page):
    d = page
    wait_screen(d, "offer", payment_wait())
    d.find_element(By.CSS_SELECTOR, "button.lang[data-lang='en']").click()
    wait_for(lambda: d.find_element(By.ID, "to-consent").text == "Read the terms", 5, "English labels")
    shoot(d, "7-offer-en")
    set_viewport(d, *ORIENTATIONS["landscape"])
    d.find_element(By.ID, "to-consent").click()
    wait_screen(d, "consent", 5)
    wait_for(lambda: "SAMPLE" in d.find_element(By.ID, "consent-text").text, 10, "the English consent text")
    scroll_consent_to_end(d, "8-consent-en")
    d.find_element(By.ID, "accept").click()
    wait_screen(d, "liveness", 10)
    wait_for(lambda: d.find_element(By.ID, "challenge").text in CHALLENGES_EN, 10, "the challenge in English")
    wait_for(lambda: preview_width(d) > 0, 15, "the camera preview")
    # The check of a synthetic shopper can be over in a second or two: this one is caught in
    # landscape (the page is shown in it), the Chinese one above in portrait.
    shoot(d, "8b-liveness-en", first="landscape")
    wait_screen(d, "result", LIVENESS_TIME_LIMIT_S + 15)
    shoot(d, "9-result-en")
    wait_for(lambda: stack.central_stored() == 2, 60, "the second application at kiosk-central")
    # Not changed on the offer: the preselected 6-month plan.
    assert stack.central_payloads()[1]["plan"]["instalments"] == 6
    en = (ROOT / "Provisioning/consent/instalment-consent.en.txt").read_bytes()
    newest = json.loads(stack.checkouts())["items"][0]
    assert newest["state"] == "completed" and newest["method"] == "kiosk_screen", newest
    assert newest["consent"]["language"] == "en"
    assert hashlib.sha256(newest["consent"]["text"].encode()).hexdigest() == hashlib.sha256(en).hexdigest()


def test_no_request_left_loopback(stack, page):
    urls = []
    for entry in page.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    assert urls, "the performance log recorded no request"
    outside = [u for u in urls if not (u.startswith(stack.url) or u.startswith("data:"))]
    assert outside == [], outside
    (ARTIFACTS / "requests.txt").write_text("\n".join(urls) + "\n")


def request(port, method, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body="{}" if method == "POST" else None, headers=headers)
        r = c.getresponse()
        return r.status
    finally:
        c.close()


def test_server_rejects_unexpected_origins_and_hosts(stack):
    port = stack.screen_port
    assert request(port, "GET", "/", {}) == 200
    assert request(port, "GET", "/", {"Host": "evil.example"}) == 403
    assert request(port, "GET", "/events", {"Origin": "http://evil.example"}) == 403
    assert request(port, "POST", "/consent-answer", {"Origin": "http://evil.example", "Content-Type": "application/json"}) == 403
    assert request(port, "POST", "/consent-answer", {"Content-Type": "application/json"}) == 403


def non_loopback_address():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outward interface's address
            ip = s.getsockname()[0]
            return None if ip.startswith("127.") else ip
    except OSError:
        return None


def test_not_reachable_from_other_addresses(stack):
    ip = non_loopback_address()
    if ip is None:
        pytest.skip("no non-loopback interface on this machine")
    with pytest.raises(OSError):
        socket.create_connection((ip, stack.screen_port), timeout=3).close()
