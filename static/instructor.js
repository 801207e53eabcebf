// The instructor console: create or open a session, run its lifecycle, change the
// technique, send prompts and announcements, and watch participants, answers and HRV.
// Built for classes of a thousand: every participant's latest HRV is kept in a map and
// the page redraws only what changed, a few times a second, not once per event.
import { connect } from "./hub-client.js";
import { GroupHrvChart, HrvChart } from "./hrv-chart.js";
import { $, api, appendFeed, bindConnection, clock, feedItem, h, mmss, pageToken, query, say, setDevName } from "./ui.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */

const ACTIONS = {
  start: ["scheduled"],
  pause: ["in_progress"],
  resume: ["paused"],
  end: ["in_progress", "paused"],
  cancel: ["scheduled", "paused"],
};

const RENDER_MS = 250; // the participant list and counters redraw at most this often
const QUIET_TYPES = new Set(["hrv_update", "hrv_summary"]); // shown in the HRV panels, not the feed

/** @typedef {{name: string, hrv: number | null, el: HTMLElement | null}} Person */

const state = {
  sessionId: "",
  status: "",
  /** @type {import("./hub-client.js").HubClient | null} */
  client: null,
  /** @type {Map<string, Person>} */
  people: new Map(),
  /** participants whose row must be redrawn (added, changed or gone) */
  dirty: new Set(),
  renderTimer: 0,
  head: 0,
  /** @type {Map<number, string>} */
  prompts: new Map(),
  /** @type {HrvChart | null} */
  chart: null,
  /** @type {GroupHrvChart | null} */
  group: null,
};

function init() {
  $("create-form").addEventListener("submit", createSession);
  $("open-form").addEventListener("submit", (/** @type {Event} */ ev) => {
    ev.preventDefault();
    openConsole($("o-session-id").value.trim());
  });
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => lifecycle(/** @type {HTMLElement} */ (button).dataset.action || ""));
  }
  $("technique-form").addEventListener("submit", changeTechnique);
  $("prompt-form").addEventListener("submit", sendPrompt);
  $("announce-form").addEventListener("submit", announce);
  const sessionId = query().get("session_id");
  if (sessionId) openConsole(sessionId);
}

/** @param {Event} ev */
async function createSession(ev) {
  ev.preventDefault();
  if ($("c-instructor").value.trim()) setDevName($("c-instructor").value.trim());
  /** @type {Record<string, any>} */
  const body = {
    title: $("c-title").value.trim(),
    instructor: $("c-instructor").value.trim(),
    session_type: $("c-type").value,
    max_participants: Number($("c-max").value || 50),
  };
  const id = $("c-session-id").value.trim();
  if (id) body.session_id = id;
  if ($("c-start").value) body.scheduled_start = new Date($("c-start").value).toISOString();
  try {
    const record = await api("POST", "/api/v2/sessions/create", body);
    say($("page-status"), `Created session ${record.session_id}.`);
    openConsole(record.session_id, record);
  } catch (err) {
    say($("page-status"), `Could not create the session — ${/** @type {Error} */ (err).message}`, "error");
  }
}

/** @param {string} sessionId @param {any} [record] */
async function openConsole(sessionId, record) {
  if (!sessionId) return;
  try {
    record = record || (await api("GET", `/api/v2/session/${encodeURIComponent(sessionId)}`));
  } catch (err) {
    say($("page-status"), `Cannot open ${sessionId} — ${/** @type {Error} */ (err).message}`, "error");
    return;
  }
  state.sessionId = sessionId;
  const url = new URL(location.href);
  url.searchParams.set("session_id", sessionId);
  history.replaceState(null, "", url);
  $("setup").hidden = true;
  $("console").hidden = false;
  $("heading").textContent = `${record.title} — instructor`;
  document.title = `${record.title} · Instructor · Session Hub`;
  const link = `${location.origin}/participant?session_id=${encodeURIComponent(sessionId)}`;
  $("participant-link").href = link;
  $("participant-link").textContent = link;
  setStatus(record.status);
  state.chart = new HrvChart($("hrv-chart"), $("hrv-legend"));
  state.group = new GroupHrvChart($("group-chart"));

  const name = record.instructor || record.instructor_name || "Instructor";
  setDevName(name);
  // since=0: the console rebuilds responses, HRV and activity from the whole log.
  const client = connect(sessionId, "instructor", name, pageToken(), { since: 0 });
  state.client = client;
  /** @type {any} */ (window).hubClient = client;
  bindConnection(client, $("badge"), $("banner"));
  client.on("welcome", (/** @type {HubMessage} */ msg) => {
    const d = msg.data;
    // The welcome lists at most 100 participants; the joins and leaves of the log (all
    // of it is replayed, in order) give the rest, so the list is merged, never replaced.
    for (const p of d.participants) addPerson(p.participant_id, p.name);
    setStatus(d.status);
    setTechnique(d.current_technique);
    state.head = d.head_seq;
    scheduleRender();
  });
  client.on("event", onEvent);
  client.on("error", (/** @type {any} */ err) => {
    if (err.code !== "resume_unavailable") say($("page-status"), `Refused — ${err.code}: ${err.hubMessage}`, "error");
  });
}

/** @param {HubMessage} msg */
function onEvent(msg) {
  const d = msg.data || {};
  state.head = /** @type {number} */ (msg.seq);
  switch (msg.type) {
    case "participant_joined":
      addPerson(d.participant_id, d.name);
      break;
    case "participant_left": {
      const gone = state.people.get(d.participant_id);
      gone?.el?.remove();
      state.people.delete(d.participant_id);
      break;
    }
    case "session_started":
    case "session_resumed":
      setStatus("in_progress");
      break;
    case "session_paused":
      setStatus("paused");
      break;
    case "session_ended":
      setStatus(d.status || "completed");
      break;
    case "technique_changed":
      setTechnique(d);
      break;
    case "prompt":
      state.prompts.set(/** @type {number} */ (msg.seq), d.text);
      break;
    case "response":
      addResponse(msg);
      break;
    case "hrv_update": {
      const who = msg.actor || { user_id: "?", name: "?" };
      state.chart?.add(who.user_id, who.name, Number(d.hrv), Date.parse(msg.ts));
      const person = state.people.get(who.user_id);
      if (person) {
        person.hrv = Number(d.hrv);
        state.dirty.add(who.user_id);
      }
      break;
    }
    case "hrv_summary":
      state.group?.add(d, Date.parse(msg.ts));
      showGroup(d);
      break;
  }
  scheduleRender();
  if (!QUIET_TYPES.has(msg.type)) appendFeed($("feed"), feedItem(msg));
}

/** @param {string} id @param {string} name */
function addPerson(id, name) {
  if (state.people.has(id)) return;
  state.people.set(id, { name, hrv: null, el: null });
  state.dirty.add(id);
}

/** @param {Record<string, any>} d  an hrv_summary's data */
function showGroup(d) {
  const gain = d.average_hrv_improvement;
  $("g-reporting").textContent = String(d.participants_reporting);
  $("g-average").textContent = d.average_hrv != null ? `${Number(d.average_hrv).toFixed(1)} ms` : "–";
  $("g-improvement").textContent = gain != null ? `${gain > 0 ? "+" : ""}${Number(gain).toFixed(1)}%` : "–";
  $("g-range").textContent = d.min_hrv != null ? `${d.min_hrv}–${d.max_hrv} ms` : "–";
}

/** @param {string} status */
function setStatus(status) {
  state.status = status;
  $("status").textContent = status.replace("_", " ");
  for (const [action, from] of Object.entries(ACTIONS)) {
    /** @type {HTMLButtonElement} */ ($(`btn-${action}`)).disabled = !from.includes(status);
  }
  const live = status === "in_progress" || status === "paused";
  for (const id of ["technique-form", "prompt-form"]) {
    for (const el of $(id).querySelectorAll("input, textarea, button")) el.disabled = !live;
  }
}

/** @param {any} t */
function setTechnique(t) {
  $("current-technique").textContent = t ? `${t.technique}${t.duration ? ` (${mmss(t.duration)})` : ""}` : "–";
}

function scheduleRender() {
  if (state.renderTimer) return;
  state.renderTimer = window.setTimeout(renderPeople, RENDER_MS);
}

/** Redraw the rows that changed since the last time (not the whole list). */
function renderPeople() {
  state.renderTimer = 0;
  const list = $("people");
  for (const id of state.dirty) {
    const p = state.people.get(id);
    if (!p) continue; // left since
    const parts = p.hrv != null ? [h("strong", {}, p.name), ` · HRV ${p.hrv} ms`] : [h("strong", {}, p.name)];
    if (p.el) p.el.replaceChildren(...parts);
    else {
      p.el = h("li", { dataset: { participantId: id } }, ...parts);
      list.append(p.el);
    }
  }
  state.dirty.clear();
  $("nobody").hidden = state.people.size > 0;
  $("count").textContent = String(state.people.size);
  $("people-count").textContent = String(state.people.size);
  $("head").textContent = String(state.head);
}

/** @param {HubMessage} msg */
function addResponse(msg) {
  const d = msg.data;
  const prompt = d.prompt_seq ? state.prompts.get(d.prompt_seq) : null;
  const item = h(
    "li",
    { dataset: { seq: String(msg.seq) } },
    h("strong", {}, msg.actor ? msg.actor.name : "?"),
    `: ${d.method === "skip" ? "(skipped)" : d.text}`,
    h("span", { class: "meta muted small", style: null }, ` · ${clock(msg.ts)}${prompt ? ` · to “${prompt}”` : ""}`),
  );
  $("responses").prepend(item);
}

/** @param {string} action */
async function lifecycle(action) {
  try {
    const record = await api("POST", `/api/v2/session/${encodeURIComponent(state.sessionId)}/${action}`);
    setStatus(record.status);
    say($("page-status"), `Session ${record.status.replace("_", " ")}.`);
  } catch (err) {
    say($("page-status"), `Could not ${action} — ${/** @type {Error} */ (err).message}`, "error");
  }
}

/**
 * Send an event over the socket, reporting the outcome in the page status line.
 * @param {string} type @param {Record<string, any>} data @param {string} done
 */
async function sendEvent(type, data, done) {
  if (!state.client) return false;
  try {
    const seq = await state.client.send(type, data);
    say($("page-status"), `${done} (#${seq}).`);
    return true;
  } catch (err) {
    say($("page-status"), `Not sent — ${/** @type {Error} */ (err).message}`, "error");
    return false;
  }
}

/** @param {Event} ev */
async function changeTechnique(ev) {
  ev.preventDefault();
  /** @type {Record<string, any>} */
  const data = { technique: $("t-name").value.trim() };
  if ($("t-duration").value) data.duration = Number($("t-duration").value);
  if ($("t-instructions").value.trim()) data.instructions = $("t-instructions").value.trim();
  await sendEvent("technique_changed", data, `Technique changed to ${data.technique}`);
}

/** @param {Event} ev */
async function sendPrompt(ev) {
  ev.preventDefault();
  /** @type {Record<string, any>} */
  const data = { text: $("p-text").value.trim(), expects_response: $("p-expects").checked };
  if ($("p-category").value.trim()) data.category = $("p-category").value.trim();
  if (await sendEvent("prompt", data, "Prompt sent")) $("p-text").value = "";
}

/** @param {Event} ev */
async function announce(ev) {
  ev.preventDefault();
  /** @type {Record<string, any>} */
  const announcement = { message: $("a-message").value.trim() };
  if ($("a-title").value.trim()) announcement.title = $("a-title").value.trim();
  const all = $("a-all").checked;
  /** @type {Record<string, any>} */
  const body = { announcement };
  if (!all) body.session_id = state.sessionId;
  try {
    const res = await api("POST", "/api/v2/live-announce", body);
    const n = res.sessions_notified.length;
    say($("page-status"), `Announced to ${n} session${n === 1 ? "" : "s"} (${res.participant_count} participants).`);
    $("a-message").value = "";
    $("a-title").value = "";
  } catch (err) {
    say($("page-status"), `Announcement not sent — ${/** @type {Error} */ (err).message}`, "error");
  }
}

init();
