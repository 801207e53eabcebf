// The participant page: join a session, follow the technique and its timer, read
// announcements and prompts as they arrive, answer prompts, send HRV readings and see
// them next to the group's progress (the hub's hrv_summary; others' readings stay private).
import { connect } from "./hub-client.js";
import { GroupHrvChart, HrvChart } from "./hrv-chart.js";
import { $, appendFeed, bindConnection, feedItem, h, mmss, pageToken, query, say } from "./ui.js";

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

const state = {
  /** @type {import("./hub-client.js").HubClient | null} */
  client: null,
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
};

function init() {
  const q = query();
  const sessionId = q.get("session_id") || "";
  const name = q.get("name") || localStorage.getItem("hub-name") || "";
  $("join-session").value = sessionId;
  $("join-name").value = name;
  $("join-form").addEventListener("submit", (/** @type {Event} */ ev) => {
    ev.preventDefault();
    join($("join-session").value.trim(), $("join-name").value.trim());
  });
  $("hrv-form").addEventListener("submit", sendHrv);
  $("raw-form").addEventListener("submit", sendRaw);
  if (sessionId && q.get("name")) join(sessionId, name);
  else (sessionId ? $("join-name") : $("join-session")).focus();
  setInterval(renderTimer, 250);
}

/** @param {string} sessionId @param {string} name */
function join(sessionId, name) {
  if (!sessionId || !name) return;
  localStorage.setItem("hub-name", name);
  const url = new URL(location.href);
  url.searchParams.set("session_id", sessionId);
  url.searchParams.set("name", name);
  history.replaceState(null, "", url);
  $("join-panel").hidden = true;
  $("live").hidden = false;
  $("heading").textContent = `Session ${sessionId}`;

  if (state.client) state.client.close();
  const client = connect(sessionId, "participant", name, pageToken());
  state.client = client;
  // Exposed for diagnostics in the console and for the browser tests.
  /** @type {any} */ (window).hubClient = client;
  bindConnection(client, $("badge"), $("banner"), (change) => {
    if (change.state === "closed" && change.reason === "session_ended") showEnded();
    // Could not get in at all (no such session, full, bad link): offer the form again.
    if (change.state === "closed" && !client.welcome && change.reason !== "closed_by_app") {
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
  });
  client.on("resync", () => say($("send-error"), "Some earlier events could not be replayed; the view was refreshed.", "notice"));
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
  renderSessionLine();
  if (d.status === "completed" || d.status === "cancelled") showEnded();
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
  for (const el of document.querySelectorAll("#live button, #live input, #live textarea")) {
    /** @type {HTMLInputElement} */ (el).disabled = true;
  }
}

/** @param {HubMessage} msg */
function addPrompt(msg) {
  $("no-prompts")?.remove();
  const id = `answer-${msg.seq}`;
  const status = h("p", { role: "status", class: "muted small" });
  const answer = /** @type {HTMLTextAreaElement} */ (h("textarea", { id, name: "answer", maxlength: "4000" }));
  const submit = h("button", { type: "submit" }, "Send answer");
  const skip = h("button", { type: "button", class: "secondary" }, "Skip");
  const form = h(
    "form",
    { class: "prompt-card", dataset: { promptSeq: String(msg.seq) } },
    h("p", {}, msg.data.text),
    h("label", { for: id }, "Your answer"),
    answer,
    h("div", { class: "buttons" }, submit, skip),
    status,
  );
  if (msg.data.expects_response === false) {
    $("prompts").prepend(h("div", { class: "prompt-card", dataset: { promptSeq: String(msg.seq) } }, h("p", {}, msg.data.text)));
    return;
  }
  const respond = async (/** @type {string} */ text, /** @type {string} */ method) => {
    if (!state.client) return;
    for (const b of [submit, skip, answer]) /** @type {HTMLButtonElement} */ (b).disabled = true;
    say(status, "Sending…");
    try {
      const seq = await state.client.send("response", { text, prompt_seq: msg.seq, method });
      say(status, method === "skip" ? "Skipped." : `Answer sent (#${seq}).`);
    } catch (err) {
      for (const b of [submit, skip, answer]) /** @type {HTMLButtonElement} */ (b).disabled = false;
      say(status, `Not sent — ${/** @type {any} */ (err).message}`, "error");
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
async function sendHrv(ev) {
  ev.preventDefault();
  if (!state.client) return;
  const value = Number($("hrv-value").value);
  const status = $("hrv-status");
  say(status, "Sending…");
  try {
    const seq = await state.client.send("hrv_update", { hrv: value });
    say(status, `Reading ${value} ms sent (#${seq}).`);
    state.mine.push(value);
    state.myChart?.add("me", "You", value);
    showMine();
    $("hrv-value").value = "";
  } catch (err) {
    say(status, `Not sent — ${/** @type {any} */ (err).message}`, "error");
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
