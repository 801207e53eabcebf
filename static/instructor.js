// The instructor console: create or open a session, run its lifecycle, change the
// technique, send prompts and announcements, hand out join links, and watch participants,
// answers and HRV. Built for classes of a thousand: every participant's latest HRV is kept
// in a map and the page redraws only what changed, a few times a second, not once per event.
//
// Who may use it: an instructor or admin token (?token=, #token= or pasted here). In open
// dev mode without a token, the person chooses the instructor role explicitly first.
import { connect } from "./hub-client.js";
import { GroupHrvChart, HrvChart } from "./hrv-chart.js";
import { $, api, appendFeed, bindConnection, clock, feedItem, h, mmss, pageToken, query, say, setDevName, toast } from "./ui.js";

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
  /** @type {{role: string, dev_mode: boolean, token: boolean, name: string} | null} who the hub says we are */
  me: null,
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

/**
 * Feedback for an action: in the status line and as a toast (seen wherever the page is
 * scrolled). @param {string} text @param {"notice" | "error"} [kind]
 */
function report(text, kind = "notice") {
  say($("page-status"), text, kind);
  toast(text, { kind });
}

async function init() {
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
  $("invite-form").addEventListener("submit", createInvite);
  $("token-form").addEventListener("submit", (/** @type {Event} */ ev) => {
    ev.preventDefault();
    sessionStorage.setItem("hub-token", $("token-input").value.trim());
    location.reload();
  });
  $("as-instructor").addEventListener("click", () => {
    sessionStorage.setItem("hub-dev-instructor", "1");
    enter();
  });
  if (await admitted()) enter();
}

/** Whether this page may act as an instructor; if not, the gate says why and what to do. */
async function admitted() {
  try {
    state.me = await api("GET", "/api/v2/whoami");
  } catch (err) {
    const e = /** @type {import("./ui.js").ApiFailure} */ (err);
    if (e.status === 401) {
      gate("This console needs an instructor token: paste one, or open the console link the hub printed when it started.", "token");
    } else {
      gate(`The hub cannot be reached (${e.message}). Reload the page once it is back.`, null);
      toast("The hub cannot be reached.", { kind: "error", key: "connection" });
    }
    return false;
  }
  const me = /** @type {any} */ (state.me);
  if (me.role !== "instructor" && me.role !== "admin") {
    gate(`This token is for ${me.name} as ${me.role}; the console needs an instructor or admin token.`, "token");
    return false;
  }
  // Open dev mode lets anyone in as anything: the instructor role is chosen, never assumed.
  const chosen = query().get("as") === "instructor" || sessionStorage.getItem("hub-dev-instructor") === "1";
  if (me.dev_mode && !me.token && !chosen) {
    gate(
      "This hub runs in open development mode (HUB_DEV=1): whoever opens this page can run any session. " +
        "Continue only if you are the instructor; participants join from their own page or a join link.",
      "dev",
    );
    return false;
  }
  return true;
}

/** @param {string} text @param {"token" | "dev" | null} offer */
function gate(text, offer) {
  $("gate").hidden = false;
  $("gate-text").textContent = text;
  $("token-form").hidden = offer !== "token";
  $("dev-choice").hidden = offer !== "dev";
  $("setup").hidden = true;
  $("console").hidden = true;
}

function enter() {
  $("gate").hidden = true;
  // Announcing to every live session of the account is an admin's (an instructor gets 403).
  $("a-all-label").hidden = state.me?.role !== "admin";
  const sessionId = query().get("session_id");
  if (sessionId) openConsole(sessionId);
  else $("setup").hidden = false;
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
    report(`Created session ${record.session_id}.`);
    openConsole(record.session_id, record);
  } catch (err) {
    report(`Could not create the session — ${/** @type {Error} */ (err).message}`, "error");
  }
}

/** @param {string} sessionId @param {any} [record] */
async function openConsole(sessionId, record) {
  if (!sessionId) return;
  try {
    record = record || (await api("GET", `/api/v2/session/${encodeURIComponent(sessionId)}`));
  } catch (err) {
    report(`Cannot open ${sessionId} — ${/** @type {Error} */ (err).message}`, "error");
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
  $("dev-link-line").hidden = !(state.me?.dev_mode && !state.me?.token);
  loadInvites();
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
    if (err.code !== "resume_unavailable") report(`Refused — ${err.code}: ${err.hubMessage}`, "error");
  });
}

/** @param {HubMessage} msg */
function onEvent(msg) {
  const d = msg.data || {};
  state.head = /** @type {number} */ (msg.seq);
  switch (msg.type) {
    case "participant_joined":
      addPerson(d.participant_id, d.name);
      refreshInvites();
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
    report(`Session ${record.status.replace("_", " ")}.`);
  } catch (err) {
    report(`Could not ${action} — ${/** @type {Error} */ (err).message}`, "error");
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
    report(`${done} (#${seq}).`);
    return true;
  } catch (err) {
    report(`Not sent — ${/** @type {Error} */ (err).message}`, "error");
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
    report(`Announced to ${n} session${n === 1 ? "" : "s"} (${res.participant_count} participants).`);
    $("a-message").value = "";
    $("a-title").value = "";
  } catch (err) {
    report(`Announcement not sent — ${/** @type {Error} */ (err).message}`, "error");
  }
}

// join links

const INVITE_STATE = {
  active: "admits",
  revoked: "revoked",
  expired: "expired",
  used_up: "used up",
  session_ended: "session ended",
};

let invitesTimer = 0;
/** Joins move the links' counts: reload the list, at most once a second. */
function refreshInvites() {
  if (invitesTimer || !state.client?.welcome) return;
  invitesTimer = window.setTimeout(() => {
    invitesTimer = 0;
    loadInvites();
  }, 1000);
}

async function loadInvites() {
  try {
    const res = await api("GET", `/api/v2/session/${encodeURIComponent(state.sessionId)}/invites`);
    $("invites").replaceChildren(...res.invites.map(inviteItem));
  } catch (err) {
    report(`Join links could not be listed — ${/** @type {Error} */ (err).message}`, "error");
  }
}

/** @param {Event} ev */
async function createInvite(ev) {
  ev.preventDefault();
  /** @type {Record<string, any>} */
  const body = { role: $("i-role").value, expires_in: Number($("i-expires").value) };
  if ($("i-max").value) body.max_uses = Number($("i-max").value);
  try {
    const invite = await api("POST", `/api/v2/session/${encodeURIComponent(state.sessionId)}/invites`, body);
    $("invites").prepend(inviteItem(invite));
    report(`Join link created: ${invite.url}`);
    $("i-max").value = "";
  } catch (err) {
    report(`Join link not created — ${/** @type {Error} */ (err).message}`, "error");
  }
}

/** @param {any} invite  an invite as the API answers it @returns {HTMLElement} */
function inviteItem(invite) {
  const uses = `${invite.uses}${invite.max_uses ? ` of ${invite.max_uses}` : ""} joined`;
  const active = invite.state === "active";
  const copy = h("button", { type: "button", class: "secondary" }, "Copy link");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(invite.url);
      toast("Link copied.");
    } catch {
      toast(`Copy this link: ${invite.url}`, { ms: 15000 });
    }
  });
  const revoke = h("button", { type: "button", class: "danger" }, "Revoke");
  revoke.addEventListener("click", async () => {
    try {
      const revoked = await api("DELETE", `/api/v2/session/${encodeURIComponent(state.sessionId)}/invites/${invite.code}`);
      item.replaceWith(inviteItem(revoked));
      report("Join link revoked: nobody new can join with it.");
    } catch (err) {
      report(`Join link not revoked — ${/** @type {Error} */ (err).message}`, "error");
    }
  });
  const item = h(
    "li",
    { dataset: { code: invite.code, state: invite.state } },
    h("a", { class: "mono invite-url", href: invite.url }, invite.url),
    h(
      "div",
      { class: "invite-line small" },
      h("span", { class: "state-tag", dataset: { state: invite.state } }, INVITE_STATE[/** @type {keyof typeof INVITE_STATE} */ (invite.state)] || invite.state),
      h("span", {}, `as ${invite.role}`),
      h("span", {}, uses),
      h("span", { class: "muted" }, active ? `until ${new Date(invite.expires_at).toLocaleString([], { hour12: false })}` : ""),
      active ? copy : null,
      active ? revoke : null,
    ),
  );
  return item;
}

init();
