// The instructor console: create or open a session, run its lifecycle, change the
// technique, send prompts and announcements, and watch participants, answers and HRV.
import { connect } from "./hub-client.js";
import { HrvChart } from "./hrv-chart.js";
import { $, api, appendFeed, bindConnection, clock, feedItem, h, mmss, pageToken, query, say, setDevName } from "./ui.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */

const ACTIONS = {
  start: ["scheduled"],
  pause: ["in_progress"],
  resume: ["paused"],
  end: ["in_progress", "paused"],
  cancel: ["scheduled", "paused"],
};

const state = {
  sessionId: "",
  status: "",
  /** @type {import("./hub-client.js").HubClient | null} */
  client: null,
  /** seq of the head at the last welcome: events up to it are history, not presence changes */
  welcomeHead: 0,
  /** @type {Map<string, {name: string, hrv: number | null}>} */
  people: new Map(),
  /** @type {Map<number, string>} */
  prompts: new Map(),
  /** @type {HrvChart | null} */
  chart: null,
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

  const name = record.instructor || record.instructor_name || "Instructor";
  setDevName(name);
  // since=0: the console rebuilds responses, HRV and activity from the whole log.
  const client = connect(sessionId, "instructor", name, pageToken(), { since: 0 });
  state.client = client;
  /** @type {any} */ (window).hubClient = client;
  bindConnection(client, $("badge"), $("banner"));
  client.on("welcome", (/** @type {HubMessage} */ msg) => {
    const d = msg.data;
    state.welcomeHead = d.head_seq;
    state.people = new Map(
      d.participants.map((/** @type {any} */ p) => [p.participant_id, { name: p.name, hrv: state.people.get(p.participant_id)?.hrv ?? null }]),
    );
    setStatus(d.status);
    setTechnique(d.current_technique);
    $("head").textContent = String(d.head_seq);
    renderPeople();
  });
  client.on("event", onEvent);
  client.on("error", (/** @type {any} */ err) => {
    if (err.code !== "resume_unavailable") say($("page-status"), `Refused — ${err.code}: ${err.hubMessage}`, "error");
  });
}

/** @param {HubMessage} msg */
function onEvent(msg) {
  const d = msg.data || {};
  const live = /** @type {number} */ (msg.seq) > state.welcomeHead;
  $("head").textContent = String(msg.seq);
  switch (msg.type) {
    case "participant_joined":
      if (live) state.people.set(d.participant_id, { name: d.name, hrv: state.people.get(d.participant_id)?.hrv ?? null });
      renderPeople();
      break;
    case "participant_left":
      if (live) state.people.delete(d.participant_id);
      renderPeople();
      break;
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
      if (person) person.hrv = Number(d.hrv);
      renderPeople();
      break;
    }
  }
  appendFeed($("feed"), feedItem(msg));
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

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  $("count").textContent = String(state.people.size);
  $("people-count").textContent = String(state.people.size);
  if (!state.people.size) list.append(h("li", { class: "muted" }, "Nobody has joined yet."));
  for (const [id, p] of state.people) {
    list.append(
      h("li", { dataset: { participantId: id } }, h("strong", {}, p.name), p.hrv != null ? ` · HRV ${p.hrv} ms` : ""),
    );
  }
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
