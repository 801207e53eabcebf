// The participant page: join a session, follow the technique and its timer, see the
// instructor's announcements and the open prompt (also after joining late or reloading:
// the welcome carries them), answer prompts, send HRV from a Bluetooth strap or typed by
// hand, and see it next to the group's progress (the hub's hrv_summary; others' readings
// stay private). Joined through a join link (?invite=CODE), the page acts under the seat's
// name and renews its token while it is open (seat.js).
import { connect } from "./hub-client.js";
import { GroupHrvChart, HrvChart } from "./hrv-chart.js";
import { HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE, RrWindow, parseHeartRateMeasurement } from "./hrv.js";
import { SeatRefused, loadSeat, refusalText, renewSeat, tokenClaims } from "./seat.js";
import { $, DEBUG, appendFeed, bindConnection, clock, feedItem, h, mmss, pageToken, query, say, toast } from "./ui.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */

const FEED_TYPES = new Set([
  "announcement",
  "technique_changed",
  "prompt",
  "session_started",
  "session_paused",
  "session_resumed",
  "session_ending",
  "session_ended",
  "achievement_unlocked",
  "hrv_milestone",
  "participant_joined",
  "participant_left",
]);
const STRAP_SEND_MS = 15000; // a strap's RMSSD goes to the hub this often
/** How a refusal reads for a participant (the hub's message follows). */
const REFUSED = /** @type {Record<string, string>} */ ({
  forbidden: "Not allowed",
  invalid: "Not accepted",
  conflict: "Not possible now",
  rate_limited: "Too fast: slow down",
  unavailable: "Not stored: the hub is busy, try again",
});

const state = {
  /** @type {import("./hub-client.js").HubClient | null} */
  client: null,
  sessionId: "",
  status: "",
  title: "",
  count: 0,
  /** @type {{technique: string, duration?: number, instructions?: string, endsAt: number | null, pausedLeft: number | null} | null} */
  technique: null,
  /** this page's own readings (ms), in the order sent */
  mine: /** @type {number[]} */ ([]),
  /** @type {HrvChart | null} */
  myChart: null,
  /** @type {GroupHrvChart | null} */
  group: null,
  announcementSeq: 0,
  /** @type {Set<number>} prompts shown */
  prompts: new Set(),
  strap: /** @type {{device: any, window: RrWindow, timer: number, sent: boolean} | null} */ (null),
};

function init() {
  const q = query();
  $("hrv-form").addEventListener("submit", sendTyped);
  $("raw-form").addEventListener("submit", sendRaw);
  $("strap-connect").addEventListener("click", connectStrap);
  $("strap-disconnect").addEventListener("click", () => disconnectStrap("Strap disconnected."));
  if (!("bluetooth" in navigator)) {
    $("strap-buttons").hidden = true;
    $("strap-status").textContent =
      "This browser cannot connect to a heart-rate strap (Web Bluetooth: Chrome or Edge on desktop and Android). Type your reading below.";
  }
  setInterval(renderTimer, 250);

  const invite = q.get("invite");
  if (invite) {
    joinWithSeat(invite);
    return;
  }
  // A token that names the person decides the name: nobody appears as someone else.
  const fixedName = tokenClaims(pageToken())?.name || "";
  const sessionId = q.get("session_id") || "";
  const name = fixedName || q.get("name") || localStorage.getItem("hub-name") || "";
  $("join-session").value = sessionId;
  $("join-name").value = name;
  if (fixedName) {
    $("name-label").hidden = true;
    $("join-name").required = false;
    $("name-fixed").hidden = false;
    $("name-fixed").textContent = `You join as ${fixedName}.`;
  }
  $("join-form").addEventListener("submit", (/** @type {Event} */ ev) => {
    ev.preventDefault();
    join($("join-session").value.trim(), fixedName || $("join-name").value.trim(), pageToken(), null);
  });
  if (sessionId && (fixedName || q.get("name"))) join(sessionId, name, pageToken(), null);
  else (sessionId ? $("join-name") : $("join-session")).focus();
}

/** Joined through a join link: the seat names the session and the person. @param {string} code */
function joinWithSeat(code) {
  const seat = loadSeat(code);
  if (!seat) {
    location.replace(`/j/${encodeURIComponent(code)}`);
    return;
  }
  $("join-panel").hidden = true;
  const getToken = async () => {
    try {
      return await renewSeat(code);
    } catch (err) {
      // Revoked, session over, seat unknown: retrying will not help; say so and stop.
      if (err instanceof SeatRefused && err.status >= 400) seatRefused(err);
      throw err;
    }
  };
  join(seat.sessionId, seat.name, pageToken(), getToken);
}

/** @param {SeatRefused} err */
function seatRefused(err) {
  state.client?.close();
  const text = refusalText(err.reason) || err.message;
  const banner = $("banner");
  banner.className = err.reason === "session_ended" ? "banner ok" : "banner bad";
  banner.hidden = false;
  banner.replaceChildren(h("span", { "data-testid": "closed-reason" }, text));
  toast(text, { kind: err.reason === "session_ended" ? "notice" : "error", key: "connection" });
  if (err.reason === "session_ended") showEnded();
}

/**
 * @param {string} sessionId @param {string} name @param {string | null} token
 * @param {(() => Promise<string>) | null} getToken
 */
function join(sessionId, name, token, getToken) {
  if (!sessionId || !name) return;
  state.sessionId = sessionId;
  if (!getToken) {
    localStorage.setItem("hub-name", name);
    const url = new URL(location.href);
    url.searchParams.set("session_id", sessionId);
    url.searchParams.set("name", name);
    history.replaceState(null, "", url);
  }
  $("join-panel").hidden = true;
  $("live").hidden = false;
  $("heading").textContent = `Session ${sessionId}`;

  if (state.client) state.client.close();
  /** @type {import("./hub-client.js").ConnectOptions & {getToken?: () => Promise<string>}} */
  const options = getToken ? { getToken } : {};
  const client = connect(sessionId, "participant", name, token, options);
  state.client = client;
  // Exposed for diagnostics in the console and for the browser tests.
  /** @type {any} */ (window).hubClient = client;
  bindConnection(client, $("badge"), $("banner"), (change) => {
    if (change.state === "closed" && change.reason === "session_ended") showEnded();
    // Could not get in at all (no such session, full, bad link): offer the form again.
    if (change.state === "closed" && !client.welcome && change.reason !== "closed_by_app" && !getToken) {
      $("join-panel").hidden = false;
      $("live").hidden = true;
    }
  });
  state.myChart = state.myChart || new HrvChart($("my-chart"), null, { maxSeries: 1 });
  state.group = state.group || new GroupHrvChart($("group-chart"));
  client.on("welcome", onWelcome);
  client.on("event", onEvent);
  // Participants get the count coalesced (once a second at most), not every join.
  client.on("presence", (/** @type {HubMessage} */ msg) => {
    state.count = msg.data.participant_count;
    renderSessionLine();
  });
  client.on("error", (/** @type {any} */ err) => {
    if (err.code === "resume_unavailable") return;
    say($("send-error"), `Refused by the hub — ${err.code}: ${err.hubMessage}`, "error");
    toast(`${REFUSED[err.code] || "Refused"} — ${err.hubMessage}`, { kind: "error" });
  });
  client.on("resync", () => toast("Some earlier events could not be replayed; the view was refreshed.", { kind: "warn" }));
}

/** @param {HubMessage} msg */
function onWelcome(msg) {
  const d = msg.data;
  state.title = d.title || "";
  state.status = d.status;
  state.count = d.participant_count;
  $("heading").textContent = d.title || `Session ${msg.session_id}`;
  document.title = `${d.title || msg.session_id} · Session Hub`;
  if (d.current_technique) setTechnique(d.current_technique, d.current_technique.changed_at);
  // A late joiner or a reload sees at once what is open and what was said.
  if (d.open_prompt) addPrompt(asEvent(msg, "prompt", d.open_prompt));
  if (d.latest_announcement) showAnnouncement(asEvent(msg, "announcement", d.latest_announcement), false);
  renderSessionLine();
  if (d.status === "completed" || d.status === "cancelled") showEnded();
}

/**
 * An event the welcome recalls, in the shape of a delivered one.
 * @param {HubMessage} welcome @param {string} type @param {any} item
 * @returns {HubMessage}
 */
function asEvent(welcome, type, item) {
  return { type, session_id: welcome.session_id, seq: item.seq, ts: item.ts, actor: item.actor, data: item.data };
}

/** @param {HubMessage} msg */
function onEvent(msg) {
  const d = msg.data || {};
  switch (msg.type) {
    case "technique_changed":
      setTechnique(d, msg.ts);
      break;
    case "prompt":
      addPrompt(msg);
      break;
    case "announcement":
      showAnnouncement(msg, true);
      break;
    case "participant_joined":
    case "participant_left":
      state.count = d.participant_count;
      break;
    case "hrv_summary":
      state.group?.add(d, Date.parse(msg.ts));
      showGroup(d);
      break;
    case "session_started":
    case "session_resumed":
      state.status = "in_progress";
      if (state.technique && state.technique.pausedLeft != null) {
        state.technique.endsAt = Date.now() + state.technique.pausedLeft * 1000;
        state.technique.pausedLeft = null;
      }
      break;
    case "session_paused":
      state.status = "paused";
      if (state.technique && state.technique.endsAt) {
        state.technique.pausedLeft = Math.max(0, (state.technique.endsAt - Date.now()) / 1000);
      }
      break;
    case "session_ended":
      state.status = d.status || "completed";
      showEnded();
      break;
  }
  renderSessionLine();
  if (FEED_TYPES.has(msg.type)) appendFeed($("feed"), feedItem(msg));
}

/**
 * The latest announcement, at the top of the page; a new one also as a toast, so that it
 * is seen wherever the person scrolled to.
 * @param {HubMessage} msg @param {boolean} live
 */
function showAnnouncement(msg, live) {
  const seq = /** @type {number} */ (msg.seq);
  if (seq <= state.announcementSeq) return;
  state.announcementSeq = seq;
  const d = msg.data || {};
  $("announcement").hidden = false;
  $("announcement-title").textContent = d.title || "Announcement";
  $("announcement-message").textContent = d.message;
  $("announcement-meta").textContent = `${clock(msg.ts)}${msg.actor ? ` · ${msg.actor.name}` : ""}`;
  if (live) toast(`${d.title ? `${d.title}: ` : "Announcement: "}${d.message}`, { kind: "notice", ms: 10000 });
}

/** @param {any} t @param {string | undefined} since */
function setTechnique(t, since) {
  const started = since ? Date.parse(since) : Date.now();
  const endsAt = t.duration ? started + t.duration * 1000 : null;
  state.technique = { technique: t.technique, duration: t.duration, instructions: t.instructions, endsAt, pausedLeft: null };
  if (state.status === "paused" && endsAt) state.technique.pausedLeft = Math.max(0, (endsAt - Date.now()) / 1000);
  $("technique-name").textContent = t.technique;
  $("technique-instructions").textContent = t.instructions || "";
  renderTimer();
}

function renderTimer() {
  const t = state.technique;
  const el = $("technique-timer");
  if (!t || !t.duration) {
    el.textContent = "";
    return;
  }
  if (t.pausedLeft != null) {
    el.textContent = `${mmss(t.pausedLeft)} (paused)`;
    return;
  }
  const left = t.endsAt ? (t.endsAt - Date.now()) / 1000 : 0;
  el.textContent = left > 0 ? mmss(left) : "0:00 — done";
}

function renderSessionLine() {
  const status = { scheduled: "not started yet", in_progress: "live", paused: "paused", completed: "ended", cancelled: "cancelled" };
  $("session-line").textContent =
    `${status[/** @type {keyof typeof status} */ (state.status)] || state.status} · ${state.count} participant${state.count === 1 ? "" : "s"}`;
}

function showEnded() {
  $("ended").hidden = false;
  if (!state.technique) $("technique-name").textContent = "–";
  state.technique = null;
  $("technique-timer").textContent = "";
  disconnectStrap("");
  for (const el of document.querySelectorAll("#live button, #live input, #live textarea")) {
    /** @type {HTMLInputElement} */ (el).disabled = true;
  }
}

/** Prompts this tab answered (or skipped), so a reload does not ask again. */
function answered() {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(`hub-answered:${state.sessionId}`) || "[]"));
  } catch {
    return new Set();
  }
}

/** @param {number} seq */
function markAnswered(seq) {
  const seqs = answered();
  seqs.add(seq);
  sessionStorage.setItem(`hub-answered:${state.sessionId}`, JSON.stringify([...seqs].slice(-50)));
}

/** @param {HubMessage} msg */
function addPrompt(msg) {
  const seq = /** @type {number} */ (msg.seq);
  if (state.prompts.has(seq)) return;
  state.prompts.add(seq);
  $("no-prompts")?.remove();
  const id = `answer-${seq}`;
  const status = h("p", { role: "status", class: "muted small" });
  if (msg.data.expects_response === false || answered().has(seq)) {
    const note = answered().has(seq) ? h("p", { class: "muted small" }, "You answered this prompt.") : null;
    $("prompts").prepend(h("div", { class: "prompt-card", dataset: { promptSeq: String(seq) } }, h("p", {}, msg.data.text), note));
    return;
  }
  const answer = /** @type {HTMLTextAreaElement} */ (h("textarea", { id, name: "answer", maxlength: "4000" }));
  const submit = h("button", { type: "submit" }, "Send answer");
  const skip = h("button", { type: "button", class: "secondary" }, "Skip");
  const form = h(
    "form",
    { class: "prompt-card", dataset: { promptSeq: String(seq) } },
    h("p", {}, msg.data.text),
    h("label", { for: id }, "Your answer"),
    answer,
    h("div", { class: "buttons" }, submit, skip),
    status,
  );
  const respond = async (/** @type {string} */ text, /** @type {string} */ method) => {
    if (!state.client) return;
    for (const b of [submit, skip, answer]) /** @type {HTMLButtonElement} */ (b).disabled = true;
    say(status, "Sending…");
    try {
      const stored = await state.client.send("response", { text, prompt_seq: seq, method });
      markAnswered(seq);
      say(status, method === "skip" ? "Skipped." : DEBUG ? `Answer sent (#${stored}).` : "Answer sent.");
    } catch (err) {
      for (const b of [submit, skip, answer]) /** @type {HTMLButtonElement} */ (b).disabled = false;
      const text = `Not sent — ${/** @type {any} */ (err).message}`;
      say(status, text, "error");
      toast(`Your answer was not sent — ${/** @type {any} */ (err).message}`, { kind: "error" });
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    respond(answer.value, "text");
  });
  skip.addEventListener("click", () => respond("", "skip"));
  $("prompts").prepend(form);
}

/** @param {Event} ev */
async function sendTyped(ev) {
  ev.preventDefault();
  if (await sendReading(Number($("hrv-value").value), "typed")) $("hrv-value").value = "";
}

/**
 * Send one HRV reading; report it in the page and, when refused, in a toast.
 * @param {number} value @param {"typed" | "strap"} source
 */
async function sendReading(value, source) {
  if (!state.client) return false;
  const status = $("hrv-status");
  say(status, "Sending…");
  try {
    const seq = await state.client.send("hrv_update", { hrv: value });
    say(status, `Reading ${value} ms sent${source === "strap" ? " from the strap" : ""}${DEBUG ? ` (#${seq})` : ""}.`);
    state.mine.push(value);
    state.myChart?.add("me", "You", value);
    showMine();
    return true;
  } catch (err) {
    say(status, `Not sent — ${/** @type {any} */ (err).message}`, "error");
    toast(`Your HRV reading was not sent — ${/** @type {any} */ (err).message}`, { kind: "error" });
    return false;
  }
}

// The strap: Heart Rate service notifications, RR intervals into a one-minute window, its
// RMSSD sent every STRAP_SEND_MS (hrv.js does the arithmetic).

async function connectStrap() {
  const bluetooth = /** @type {any} */ (navigator).bluetooth;
  const status = $("strap-status");
  try {
    say(status, "Choose your strap in the browser's list…");
    const device = await bluetooth.requestDevice({ filters: [{ services: [HEART_RATE_SERVICE] }] });
    say(status, `Connecting to ${device.name || "the strap"}…`);
    device.addEventListener("gattserverdisconnected", () => disconnectStrap("The strap disconnected. Connect it again, or type your reading."));
    const server = await device.gatt.connect();
    const service = await server.getPrimaryService(HEART_RATE_SERVICE);
    const measurement = await service.getCharacteristic(HEART_RATE_MEASUREMENT);
    const window = new RrWindow(60, 20);
    measurement.addEventListener("characteristicvaluechanged", (/** @type {any} */ ev) => onBeat(parseHeartRateMeasurement(ev.target.value)));
    await measurement.startNotifications();
    state.strap = { device, window, timer: setInterval(sendStrapReading, STRAP_SEND_MS), sent: false };
    $("strap-connect").hidden = true;
    $("strap-disconnect").hidden = false;
    $("strap-stats").hidden = false;
    say(status, `${device.name || "Strap"} connected: collecting beats for the first reading…`);
    toast("Heart-rate strap connected.", { key: "strap" });
  } catch (err) {
    const e = /** @type {any} */ (err);
    // The person closed the chooser: not an error worth a toast.
    if (e && e.name === "NotFoundError") say(status, "No strap chosen. Type your reading below, or try again.");
    else {
      say(status, `The strap could not be connected — ${e && e.message ? e.message : e}`, "error");
      toast(`The strap could not be connected — ${e && e.message ? e.message : e}`, { kind: "error", key: "strap" });
    }
  }
}

/** @param {import("./hrv.js").Measurement} m */
function onBeat(m) {
  if (!state.strap) return;
  state.strap.window.add(m.rr);
  $("strap-bpm").textContent = `${m.heartRate} bpm`;
  const value = state.strap.window.rmssd();
  $("strap-rmssd").textContent = value == null ? "collecting…" : `${value} ms`;
  if (value != null && !state.strap.sent) sendStrapReading(); // the first one as soon as it is known
}

async function sendStrapReading() {
  const strap = state.strap;
  const value = strap?.window.rmssd();
  if (!strap || value == null) return;
  if (!strap.sent) say($("strap-status"), `Connected: your RMSSD goes to the instructor every ${STRAP_SEND_MS / 1000} s.`);
  strap.sent = true;
  await sendReading(value, "strap");
}

/** @param {string} why */
function disconnectStrap(why) {
  const strap = state.strap;
  if (!strap) return;
  state.strap = null;
  clearInterval(strap.timer);
  try {
    if (strap.device.gatt.connected) strap.device.gatt.disconnect();
  } catch {
    /* already gone */
  }
  $("strap-connect").hidden = false;
  $("strap-disconnect").hidden = true;
  if (why) {
    say($("strap-status"), why);
    toast(why, { kind: "warn", key: "strap" });
  }
}

function showMine() {
  const first = state.mine[0];
  const latest = state.mine[state.mine.length - 1];
  $("my-latest").textContent = `${latest} ms`;
  $("my-count").textContent = String(state.mine.length);
  const change = first > 0 ? Math.round(((latest - first) / first) * 1000) / 10 : null;
  $("my-change").textContent = change == null ? "–" : `${change > 0 ? "+" : ""}${change}%`;
}

/** @param {Record<string, any>} d  an hrv_summary's data */
function showGroup(d) {
  const gain = d.average_hrv_improvement;
  $("g-reporting").textContent = String(d.participants_reporting);
  $("g-average").textContent = d.average_hrv != null ? `${Number(d.average_hrv).toFixed(1)} ms` : "–";
  $("g-improvement").textContent = gain != null ? `${gain > 0 ? "+" : ""}${Number(gain).toFixed(1)}%` : "–";
  $("g-range").textContent = d.min_hrv != null ? `${d.min_hrv}–${d.max_hrv} ms` : "–";
}

/** @param {Event} ev */
async function sendRaw(ev) {
  ev.preventDefault();
  if (!state.client) return;
  let data;
  try {
    data = JSON.parse($("raw-data").value || "{}");
  } catch {
    say($("send-error"), "Data must be JSON.", "error");
    return;
  }
  try {
    const seq = await state.client.send($("raw-type").value.trim(), data);
    say($("send-error"), `Stored as #${seq}.`, "notice");
  } catch {
    /* the "error" listener shows it */
  }
}

init();
