/// The shopper's page: HTML, CSS and script, built in (no external resource: the kiosk may be offline).
enum PageAssets {
    /// The single page.
    static let html = #"""
<!doctype html>
<html lang="zh-Hans">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, user-scalable=no">
<title>Kiosk</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header>
  <div id="brand" data-t="brand"></div>
  <nav id="langs"><button class="lang" data-lang="zh-Hans">中文</button><button class="lang" data-lang="en">English</button></nav>
</header>
<main>
  <section id="idle" class="screen active">
    <h1 data-t="idle_title"></h1><p class="sub" data-t="idle_sub"></p>
  </section>
  <section id="checking" class="screen">
    <h1 data-t="checking"></h1><div class="spinner"></div>
  </section>
  <section id="offer" class="screen">
    <h1 data-t="offer_title"></h1>
    <p class="amount"><span data-t="amount"></span> <strong id="amount"></strong></p>
    <p class="lender"><span data-t="lender"></span> <strong id="lender"></strong></p>
    <div id="plans" role="radiogroup"></div>
    <div class="actions">
      <button id="decline-offer" class="secondary" data-t="no_thanks"></button>
      <button id="to-consent" class="primary" data-t="read_terms"></button>
    </div>
  </section>
  <section id="consent" class="screen">
    <h1 data-t="consent_title"></h1>
    <p class="version"><span data-t="version"></span> <span id="consent-version"></span></p>
    <div id="consent-text" tabindex="0"></div>
    <p class="hint" id="scroll-hint" data-t="scroll_hint"></p>
    <div class="actions">
      <button id="decline" class="secondary" data-t="decline"></button>
      <button id="accept" class="primary" disabled data-t="accept"></button>
    </div>
  </section>
  <section id="liveness" class="screen">
    <h1 data-t="liveness_title"></h1>
    <div class="live">
      <div id="preview" aria-hidden="true"><img id="preview-img" alt="" draggable="false"><div class="face"></div></div>
      <div class="guidance">
        <p id="challenge" class="challenge"></p>
        <ul id="hints"></ul>
      </div>
    </div>
  </section>
  <section id="result" class="screen">
    <h1 id="result-title"></h1>
    <p id="result-reference" class="reference"></p>
    <p id="result-text" class="sub"></p>
    <p class="countdown"><span data-t="returning"></span> <span id="countdown"></span></p>
    <div class="actions"><button id="done" class="primary" data-t="done"></button></div>
  </section>
</main>
<script src="/app.js"></script>
</body>
</html>
"""#

    /// The page's style: large touch targets, no selection, portrait and landscape.
    static let style = #"""
* { box-sizing: border-box; -webkit-user-select: none; user-select: none; -webkit-touch-callout: none; -webkit-tap-highlight-color: transparent; }
html, body { margin: 0; height: 100%; overflow: hidden; background: #0f2a3d; color: #fff;
  font-family: "Noto Sans CJK SC", "Noto Sans SC", "Noto Sans", "DejaVu Sans", sans-serif; }
body { display: flex; flex-direction: column; font-size: clamp(20px, 2.4vmin + 8px, 40px); }
header { display: flex; justify-content: space-between; align-items: center; padding: 2vmin 4vmin; background: #0b1f2e; }
#brand { font-weight: 700; font-size: 1.2em; }
nav button.lang { min-width: 6em; min-height: 88px; margin-left: 1vmin; font-size: 0.9em; border-radius: 16px; border: 3px solid #5fb3e6;
  background: transparent; color: #fff; }
nav button.lang.on { background: #5fb3e6; color: #0b1f2e; }
main { flex: 1; position: relative; }
.screen { display: none; position: absolute; inset: 0; padding: 4vmin 6vmin; flex-direction: column; gap: 2.5vmin; }
.screen.active { display: flex; }
h1 { margin: 0; font-size: 1.8em; line-height: 1.25; }
.sub { font-size: 1.1em; opacity: 0.9; }
#idle, #checking { justify-content: center; align-items: center; text-align: center; }
#idle h1 { font-size: 2.4em; }
.amount strong { font-size: 1.6em; }
#plans { display: grid; gap: 2vmin; grid-template-columns: repeat(auto-fit, minmax(11em, 1fr)); }
.plan { min-height: 160px; padding: 2vmin; border-radius: 20px; border: 4px solid #5fb3e6; background: #143a54; color: #fff; font-size: 1em; text-align: left; }
.plan.on { background: #5fb3e6; color: #0b1f2e; }
.plan .m { font-size: 1.4em; font-weight: 700; display: block; }
.plan small { display: block; font-size: 0.75em; opacity: 0.9; }
.actions { display: flex; gap: 3vmin; margin-top: auto; }
.actions button { flex: 1; min-height: 120px; font-size: 1.2em; border-radius: 24px; border: none; font-weight: 700; }
button.primary { background: #2fbf71; color: #062414; }
button.primary:disabled { background: #567; color: #9ab; }
button.secondary { background: #e9eef2; color: #0b1f2e; }
#consent-text { flex: 1; overflow-y: auto; white-space: pre-wrap; background: #fff; color: #111; padding: 3vmin; border-radius: 16px;
  font-size: 0.9em; line-height: 1.6; touch-action: pan-y; }
.hint { color: #ffd166; margin: 0; }
.hint.done { visibility: hidden; }
.live { flex: 1; display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 4vmin; }
.guidance { display: flex; flex-direction: column; gap: 2vmin; }
#preview { position: relative; overflow: hidden; width: min(60vmin, 80%); aspect-ratio: 3 / 4; border-radius: 50% / 40%; border: 8px solid #5fb3e6;
  background: #0b1f2e; display: flex; align-items: center; justify-content: center; flex: none; }
/* The shopper sees themselves as in a mirror. */
#preview img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: cover; transform: scaleX(-1); display: none;
  -webkit-user-drag: none; pointer-events: none; }
#preview.on img { display: block; }
#preview .face { position: relative; width: 50%; height: 60%; border-radius: 50%; border: 6px dashed #5fb3e6; opacity: 0.6; }
.challenge { font-size: 1.8em; font-weight: 700; text-align: center; color: #ffd166; }
#hints { list-style: none; padding: 0; margin: 0; text-align: center; font-size: 1.2em; }
#result { justify-content: center; text-align: center; }
.reference { font-size: 2.4em; font-weight: 700; letter-spacing: 0.1em; color: #2fbf71; font-family: "DejaVu Sans Mono", monospace; }
.spinner { width: 15vmin; height: 15vmin; border: 2vmin solid #5fb3e6; border-top-color: transparent; border-radius: 50%; animation: spin 1s linear infinite; }
@keyframes spin { to { transform: rotate(360deg); } }
@media (orientation: landscape) {
  #offer #plans { grid-template-columns: repeat(3, 1fr); }
  .live { flex-direction: row; }
  #preview { width: auto; height: min(62vh, 70vmin); }
  .guidance { flex: 0 1 40%; }
  .guidance .challenge, #hints { text-align: left; }
  .actions button { min-height: 100px; }
}
"""#

    /// The page's logic: state from `/events`, consent from `/consent`, answers to `/consent-answer`.
    static let script = #"""
"use strict";
const T = {
  "zh-Hans": {
    brand: "分期付款", idle_title: "欢迎", idle_sub: "付款后可在此选择分期付款", checking: "正在查询分期方案…",
    offer_title: "本次购物可分期付款", amount: "金额", lender: "贷款机构", no_thanks: "不用了", read_terms: "阅读条款",
    months: "期", per_month: "每月", fee: "手续费", total: "总额",
    consent_title: "分期付款条款", version: "版本", scroll_hint: "请滚动阅读全部条款后再同意", decline: "拒绝", accept: "同意",
    liveness_title: "人脸活体检测", returning: "返回首页", done: "完成",
    r_completed: "申请已提交", r_completed_text: "请保存您的申请编号。贷款机构将与您联系。",
    r_declined: "您已拒绝分期", r_declined_text: "您的付款已完成。谢谢！",
    r_timed_out: "未收到回答", r_timed_out_text: "未提交分期申请。您的付款已完成。",
    r_liveness_failed: "人脸检测未通过", r_liveness_failed_text: "很抱歉，本次无法提交申请。您的付款已完成。",
    r_abandoned: "很抱歉，操作已中断", r_abandoned_text: "未提交申请。如需帮助请联系工作人员。",
    r_ineligible: "本次购物不提供分期", r_ineligible_text: "您的付款已完成。谢谢！",
    c_blink: "请眨眼", c_turn_left: "请向左转头", c_turn_right: "请向右转头", c_come_closer: "请靠近一点", c_look: "请看着摄像头",
    c_move_closer: "请靠近一点",
    h_more_light: "光线太暗", h_face_camera: "请正对摄像头", h_hold_still: "请保持不动", h_move_back: "请后退一点",
    h_face_the_camera: "请正对摄像头", h_only_one_person: "请只让一人出现在画面中", h_come_closer: "请靠近一点",
    h_center_your_face: "请将脸部置于框内", h_less_light: "光线太亮",
    answered: "已在终端上回答", error: "出现问题，请重试"
  },
  "en": {
    brand: "Pay in instalments", idle_title: "Welcome", idle_sub: "After paying, you can choose to pay in instalments here",
    checking: "Checking instalment options…",
    offer_title: "Pay for this purchase in instalments", amount: "Amount", lender: "Lender", no_thanks: "No thanks",
    read_terms: "Read the terms", months: "months", per_month: "per month", fee: "fee", total: "total",
    consent_title: "Instalment terms", version: "Version", scroll_hint: "Scroll to the end of the terms to accept",
    decline: "Decline", accept: "Accept", liveness_title: "Face check", returning: "Back to start in",
    done: "Done",
    r_completed: "Application sent", r_completed_text: "Keep your application reference. The lender will contact you.",
    r_declined: "No instalments", r_declined_text: "Your payment is complete. Thank you!",
    r_timed_out: "No answer received", r_timed_out_text: "No application was made. Your payment is complete.",
    r_liveness_failed: "Face check not passed", r_liveness_failed_text: "Sorry, we cannot send an application this time. Your payment is complete.",
    r_abandoned: "Sorry, this was interrupted", r_abandoned_text: "No application was made. Please ask staff if you need help.",
    r_ineligible: "Instalments are not available for this purchase", r_ineligible_text: "Your payment is complete. Thank you!",
    c_blink: "Blink", c_turn_left: "Turn your head left", c_turn_right: "Turn your head right", c_come_closer: "Come a little closer",
    c_look: "Look at the camera",
    c_move_closer: "Come a little closer",
    h_more_light: "More light needed", h_face_camera: "Face the camera", h_hold_still: "Hold still", h_move_back: "Move back a little",
    h_face_the_camera: "Face the camera", h_only_one_person: "Only one person in the picture, please", h_come_closer: "Come a little closer",
    h_center_your_face: "Put your face in the frame", h_less_light: "Too bright",
    answered: "Answered on the terminal", error: "Something went wrong, please try again"
  }
};
const $ = (id) => document.getElementById(id);
let cfg = { languages: ["zh-Hans", "en"], default_language: "zh-Hans", lender: "" };
let lang = "zh-Hans";
let state = { phase: "idle" };
let consent = null;
let view = "idle";
let plan = null;
let resetTimer = null, tick = null;
let previewTimer = null, previewOn = false, previewN = 0;
const t = (k) => (T[lang] && T[lang][k]) || T.en[k] || k;

function money(minor, cur) {
  if (minor === undefined || minor === null) return "";
  const v = (minor / 100).toFixed(2);
  return (cur === "CNY" ? "¥" : "") + v + (cur && cur !== "CNY" ? " " + cur : "");
}
// The live camera preview: /preview.bmp (served only during the check, never cached) reloaded a few
// times a second into one <img>; nothing is kept (no storage, no download, no canvas copy).
function previewNext(delay) { clearTimeout(previewTimer); if (previewOn) previewTimer = setTimeout(loadPreview, delay); }
function loadPreview() {
  if (!previewOn) return;
  const img = $("preview-img");
  img.onload = () => { $("preview").classList.add("on"); previewNext(200); };
  img.onerror = () => { $("preview").classList.remove("on"); previewNext(500); };
  previewN += 1;
  img.src = "/preview.bmp?n=" + previewN;
}
function startPreview() { if (!previewOn) { previewOn = true; loadPreview(); } }
function stopPreview() {
  previewOn = false; clearTimeout(previewTimer);
  const img = $("preview-img"); img.onload = null; img.onerror = null; img.removeAttribute("src");
  $("preview").classList.remove("on");
}
function show(name) {
  view = name;
  if (name === "liveness") startPreview(); else stopPreview();
  document.querySelectorAll(".screen").forEach((s) => s.classList.toggle("active", s.id === name));
  document.body.dataset.screen = name;
}
function translate() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach((e) => { e.textContent = t(e.dataset.t); });
  document.querySelectorAll("button.lang").forEach((b) => b.classList.toggle("on", b.dataset.lang === lang));
  renderPlans(); renderLiveness(); renderResult();
}
function renderPlans() {
  const box = $("plans"); box.textContent = "";
  (state.plans || []).forEach((p) => {
    const b = document.createElement("button");
    b.className = "plan" + (plan === p.months ? " on" : "");
    b.dataset.months = p.months;
    b.setAttribute("role", "radio");
    const m = document.createElement("span"); m.className = "m"; m.textContent = p.months + " " + t("months");
    const pm = document.createElement("span"); pm.textContent = money(p.monthly_minor, state.currency) + " " + t("per_month");
    const f = document.createElement("small"); f.textContent = t("fee") + " " + money(p.fee_minor, state.currency) + " · " + t("total") + " " + money(p.total_minor, state.currency);
    b.append(m, pm, f);
    b.onclick = () => { plan = p.months; renderPlans(); };
    box.append(b);
  });
}
function renderLiveness() {
  const c = state.challenge || "look";
  $("challenge").textContent = T[lang]["c_" + c] ? t("c_" + c) : c;
  const ul = $("hints"); ul.textContent = "";
  (state.hints || []).forEach((h) => { const li = document.createElement("li"); li.textContent = T[lang]["h_" + h] ? t("h_" + h) : h; ul.append(li); });
}
function renderResult() {
  if (state.phase !== "result") return;
  const o = state.outcome || "abandoned";
  $("result-title").textContent = t("r_" + o);
  $("result-text").textContent = t("r_" + o + "_text");
  $("result-reference").textContent = o === "completed" && state.reference ? state.reference : "";
}
async function loadConsent() {
  const r = await fetch("/consent?lang=" + encodeURIComponent(lang), { cache: "no-store" });
  consent = await r.json();
  $("consent-version").textContent = consent.id + " " + consent.version;
  const box = $("consent-text");
  box.textContent = consent.text;
  box.scrollTop = 0;
  $("accept").disabled = true;
  $("scroll-hint").classList.remove("done");
  setTimeout(checkScrolled, 50);
}
function checkScrolled() {
  const box = $("consent-text");
  // Only a text on screen counts as read (a hidden box has no height and would look "scrolled").
  if (view !== "consent" || !consent || box.clientHeight === 0) return;
  if (box.scrollTop + box.clientHeight >= box.scrollHeight - 4) {
    $("accept").disabled = false;
    $("scroll-hint").classList.add("done");
  }
}
async function answer(a) {
  if (!consent || !state.checkout_id) return;
  const body = { checkout_id: state.checkout_id, request_id: state.request_id, answer: a, language: consent.language, text_sha256: consent.sha256 };
  // The plan selected on the offer goes with an acceptance (recorded in the application).
  if (a === "accept" && plan !== null) body.plan_months = plan;
  $("accept").disabled = true;
  try {
    const r = await fetch("/consent-answer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const j = await r.json();
    document.body.dataset.lastAnswer = j.result;
    if (j.result === "accepted") show(a === "accept" ? "liveness" : "checking");
  } catch (e) { document.body.dataset.lastAnswer = "error"; }
}
function clearPersonal() {
  consent = null; plan = null;
  state = { phase: "idle" };
  ["amount", "lender", "consent-text", "consent-version", "result-reference", "result-title", "result-text", "challenge", "hints", "plans"]
    .forEach((id) => { $(id).textContent = ""; });
}
function toIdle() {
  clearTimeout(resetTimer); clearInterval(tick);
  clearPersonal();
  lang = cfg.default_language || "zh-Hans";
  translate();
  show("idle");
}
function apply(s) {
  const newCheckout = s.checkout_id !== state.checkout_id;
  state = s;
  switch (s.phase) {
    case "idle": toIdle(); return;
    case "checking": show("checking"); break;
    case "offer":
      if (newCheckout || (view !== "offer" && view !== "consent")) {
        plan = (s.plans && s.plans.length) ? s.plans[Math.min(1, s.plans.length - 1)].months : null;
        $("amount").textContent = money(s.amount_minor, s.currency);
        $("lender").textContent = cfg.lender;
        renderPlans();
        show("offer");
        loadConsent();
      }
      break;
    case "liveness": renderLiveness(); show("liveness"); break;
    case "result":
      renderResult(); show("result");
      clearTimeout(resetTimer); clearInterval(tick);
      let left = s.result_seconds || 15;
      $("countdown").textContent = left;
      tick = setInterval(() => { left -= 1; $("countdown").textContent = Math.max(left, 0); }, 1000);
      resetTimer = setTimeout(toIdle, (s.result_seconds || 15) * 1000);
      break;
  }
}
function connect() {
  const es = new EventSource("/events");
  es.onmessage = (m) => { try { apply(JSON.parse(m.data)); } catch (e) {} };
  es.onopen = () => { document.body.dataset.connected = "yes"; };
  es.onerror = () => { document.body.dataset.connected = "no"; };
}
document.addEventListener("contextmenu", (e) => e.preventDefault());
document.addEventListener("selectstart", (e) => e.preventDefault());
document.addEventListener("dragstart", (e) => e.preventDefault());
document.querySelectorAll("button.lang").forEach((b) => b.onclick = () => {
  lang = b.dataset.lang; translate();
  if (view === "consent" || view === "offer") loadConsent();
});
$("to-consent").onclick = () => { show("consent"); setTimeout(checkScrolled, 50); };
$("decline-offer").onclick = () => answer("decline");
$("decline").onclick = () => answer("decline");
$("accept").onclick = () => answer("accept");
$("done").onclick = toIdle;
$("consent-text").addEventListener("scroll", checkScrolled);
window.addEventListener("resize", () => setTimeout(checkScrolled, 50));
fetch("/config").then((r) => r.json()).then((c) => { cfg = c; lang = c.default_language || lang; translate(); connect(); })
  .catch(() => { translate(); connect(); });
"""#
}
