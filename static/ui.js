// Small helpers the pages share: DOM building (text only, never innerHTML), the HTTP
// API, the page's token, the connection badge, banner and toasts, and how an event reads
// in a feed.

import { devUserId } from "./hub-client.js";
import { currentToken } from "./seat.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */
/** @typedef {import("./hub-client.js").HubClient} HubClient */
/** @typedef {import("./hub-client.js").StateChange} StateChange */

/**
 * Build an element. Children are nodes or strings (inserted as text).
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "object" ? child : String(child));
  }
  return el;
}

/** @param {string} id @returns {any} */
export const $ = (id) => document.getElementById(id);

/** @returns {URLSearchParams} */
export const query = () => new URLSearchParams(location.search);

/** Developer tools (raw events, seq numbers, links between pages) only with ?debug=1. */
export const DEBUG = query().get("debug") === "1";
if (DEBUG) document.documentElement.dataset.debug = "1";

// A token in the fragment (#token=…, as the hub's start banner prints it) is kept for
// this tab and taken out of the address bar, where it would be shared with the link.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  sessionStorage.setItem("hub-token", /** @type {string} */ (fragment.get("token")));
  history.replaceState(null, "", location.pathname + location.search);
}

/**
 * The page's token, if any: ?token=…, the one kept for this tab, or the seat's of a join
 * link (?invite=CODE); dev mode needs none.
 * @returns {string | null}
 */
export function pageToken() {
  const invite = query().get("invite");
  if (invite) return currentToken(invite);
  return query().get("token") || sessionStorage.getItem("hub-token") || null;
}

/**
 * Dev mode only (no token): name the caller of HTTP requests the way the socket is named
 * (the same sessionStorage user id as hub-client.js), so the log shows who did what.
 * @param {string} name
 */
export function setDevName(name) {
  sessionStorage.setItem("hub-dev-name", name);
}

/** @param {string} path */
function withDevIdentity(path) {
  const name = sessionStorage.getItem("hub-dev-name");
  if (!name) return path;
  const u = new URL(path, location.origin);
  u.searchParams.set("user_id", devUserId());
  if (name) u.searchParams.set("name", name);
  return u.pathname + u.search;
}

export class ApiFailure extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

/**
 * Call the HTTP API; resolves with the JSON body or throws ApiFailure.
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const token = pageToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (!token) path = withDevIdentity(path);
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiFailure(0, "network", "the hub cannot be reached");
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    /* empty body */
  }
  if (!res.ok) {
    const e = (json && json.error) || {};
    throw new ApiFailure(res.status, e.code || `http_${res.status}`, e.message || res.statusText);
  }
  return json;
}

/** @param {string | null | undefined} ts @returns {string} local HH:MM:SS */
export function clock(ts) {
  const d = ts ? new Date(ts) : new Date();
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour12: false });
}

/** @param {number} seconds @returns {string} m:ss */
export function mmss(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const STATE_TEXT = {
  connecting: "Connecting…",
  open: "Live",
  resuming: "Reconnecting…",
  closed: "Disconnected",
};

const CLOSED_TEXT = /** @type {Record<string, string>} */ ({
  session_ended: "The session has ended.",
  not_found: "No such session.",
  session_full: "The session is full.",
  unauthorized: "Not signed in (a token is needed).",
  forbidden: "Not allowed to join this session in this role.",
  too_many_errors: "Disconnected after too many refused messages.",
  rate_limited: "Disconnected for sending too fast.",
  too_many_connections: "Too many open connections for this user.",
  bad_request: "The link is missing something (session id or role).",
  closed_by_app: "Left the session.",
});

/**
 * Show a client's connection state in a badge, and a banner while reconnecting
 * (with a "Reconnect now" button) or once closed for good.
 * @param {HubClient | import("./hub-stream.js").StreamClient} client
 * @param {HTMLElement} badge
 * @param {HTMLElement} banner
 * @param {(change: StateChange) => void} [extra]
 */
export function bindConnection(client, badge, banner, extra) {
  let countdown = 0;
  client.on("state", (/** @type {StateChange} */ change) => {
    badge.dataset.state = change.state;
    badge.textContent = change.reason === "session_ended" ? "Session ended" : STATE_TEXT[change.state];
    clearInterval(countdown);
    banner.replaceChildren();
    banner.hidden = true;
    if (change.state === "resuming") {
      banner.className = "banner warn";
      banner.hidden = false;
      const why = change.reason ? ` (${change.reason.replace(/_/g, " ")})` : "";
      const text = h("span", { "data-testid": "reconnecting" }, `Connection lost${why}. Reconnecting…`);
      const retry = h("button", { type: "button", class: "secondary", onclick: () => client.reconnectNow() }, "Reconnect now");
      banner.append(text, retry);
      if (change.delay) {
        const until = Date.now() + change.delay;
        const tick = () => {
          const left = Math.ceil((until - Date.now()) / 1000);
          text.textContent = `Connection lost${why}. Reconnecting${left > 0 ? ` in ${left} s` : "…"}`;
        };
        tick();
        countdown = window.setInterval(tick, 500);
      }
    } else if (change.state === "closed") {
      banner.className = change.reason === "session_ended" || change.reason === "closed_by_app" ? "banner ok" : "banner bad";
      banner.hidden = false;
      const text = CLOSED_TEXT[change.reason || ""] || `Disconnected (${change.reason || "closed"}, code ${change.code}).`;
      banner.append(h("span", { "data-testid": "closed-reason" }, text));
    }
    announce(change);
    if (extra) extra(change);
  });

  /** A toast for every change of connection the person should know of. @param {StateChange} change */
  function announce(change) {
    if (change.state === "resuming" && change.previous === "connecting") {
      toast("The hub cannot be reached yet. Retrying…", { kind: "warn", key: "connection", ms: 0 });
    } else if (change.state === "resuming" && change.previous === "open") {
      const why = change.reason && change.reason !== "connecting" ? ` (${change.reason.replace(/_/g, " ")})` : "";
      toast(`Connection lost${why}. Reconnecting…`, {
        kind: "warn",
        key: "connection",
        ms: 0,
        action: { label: "Retry now", run: () => client.reconnectNow() },
      });
    } else if (change.state === "open" && change.previous === "resuming" && change.attempt > 0) {
      toast("Reconnected. You are live again.", { key: "connection" });
    } else if (change.state === "closed" && change.reason !== "closed_by_app") {
      const text = CLOSED_TEXT[change.reason || ""] || `Disconnected (${change.reason || "closed"}, code ${change.code}).`;
      toast(text, { kind: change.reason === "session_ended" ? "notice" : "error", key: "connection", ms: change.reason === "session_ended" ? 0 : undefined });
    }
  }
}

/**
 * A one-line description of an event for feeds.
 * @param {HubMessage} msg
 * @returns {string}
 */
export function describe(msg) {
  const d = msg.data || {};
  const who = (msg.actor && msg.actor.name) || "hub";
  switch (msg.type) {
    case "session_started":
      return `Session started${d.message ? `: ${d.message}` : ""}`;
    case "session_paused":
      return `Session paused${d.reason ? `: ${d.reason}` : ""}`;
    case "session_resumed":
      return `Session resumed${d.message ? `: ${d.message}` : ""}`;
    case "session_ending":
      return `Session ending${d.seconds_remaining != null ? ` in ${mmss(d.seconds_remaining)}` : ""}${d.message ? `: ${d.message}` : ""}`;
    case "session_ended":
      return `Session ${d.status === "cancelled" ? "cancelled" : "ended"}${d.message ? `: ${d.message}` : ""}`;
    case "participant_joined":
      return `${d.name || d.participant_id} joined (${d.participant_count} here)`;
    case "participant_left":
      return `${d.name || d.participant_id} left (${d.participant_count} here)`;
    case "technique_changed":
      return `Technique: ${d.technique}${d.duration ? ` for ${mmss(d.duration)}` : ""}`;
    case "hrv_update":
      return `${who}: HRV ${d.hrv} ms${d.improvement != null ? ` (${d.improvement > 0 ? "+" : ""}${d.improvement}%)` : ""}`;
    case "hrv_summary":
      return `Group HRV: ${d.average_hrv} ms${d.average_hrv_improvement != null ? ` (${d.average_hrv_improvement > 0 ? "+" : ""}${d.average_hrv_improvement}%)` : ""}, ${d.participants_reporting} reporting`;
    case "hrv_milestone":
      return `HRV milestone: ${d.improvement}%${d.message ? ` — ${d.message}` : ""}`;
    case "achievement_unlocked":
      return `Achievement: ${d.title}${d.description ? ` — ${d.description}` : ""}`;
    case "prompt":
      return `Prompt: ${d.text}`;
    case "response":
      return `${who} answered${d.prompt_seq ? ` #${d.prompt_seq}` : ""}: ${d.text || "(skipped)"}`;
    case "announcement":
      return `${d.title ? `${d.title}: ` : "Announcement: "}${d.message}`;
    case "note":
      return `Note (${d.note_type || "observation"}): ${d.content}`;
    case "feedback":
      return `${who}: ${d.feedback_type} on #${d.message_seq}`;
    case "session_update":
      return `Session update: ${JSON.stringify(d)}`;
    default:
      return `${msg.type}: ${JSON.stringify(d)}`;
  }
}

/**
 * A feed entry; `data-seq` and `data-type` let tests and styles find it.
 * @param {HubMessage} msg
 * @returns {HTMLElement}
 */
export function feedItem(msg) {
  return h(
    "li",
    { dataset: { seq: String(msg.seq), type: msg.type } },
    h("span", { class: "meta" }, `${DEBUG ? `#${msg.seq} · ` : ""}${clock(msg.ts)}${msg.actor ? ` · ${msg.actor.name}` : ""}`),
    h("span", { class: "text" }, describe(msg)),
  );
}

/**
 * Append to a feed (newest last), keeping at most `max` entries and the view pinned to
 * the bottom when it was there.
 * @param {HTMLElement} list
 * @param {HTMLElement} item
 * @param {number} [max]
 */
export function appendFeed(list, item, max = 300) {
  const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(item);
  while (list.children.length > max) list.firstElementChild?.remove();
  if (pinned) list.scrollTop = list.scrollHeight;
}

/**
 * Show a message in a status element (role=status / alert) for a while.
 * @param {HTMLElement} el
 * @param {string} text
 * @param {"notice" | "error"} [kind]
 */
export function say(el, text, kind = "notice") {
  el.className = kind;
  el.textContent = text;
}

/** @returns {HTMLElement} the page's toast stack (created on first use) */
function toastRegion() {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  return region;
}

/**
 * Feedback where the person is looking, whatever they scrolled to: a toast at the edge of
 * the viewport. A toast with a `key` replaces the previous one of that key (the connection
 * has one toast, not one per attempt). Errors stay until dismissed or replaced.
 * @param {string} text
 * @param {{kind?: "notice" | "error" | "warn", key?: string, action?: {label: string, run: () => void}, ms?: number}} [opts]
 * @returns {HTMLElement}
 */
export function toast(text, opts = {}) {
  const kind = opts.kind || "notice";
  const region = toastRegion();
  if (opts.key) region.querySelector(`[data-key="${opts.key}"]`)?.remove();
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const item = h(
    "div",
    { class: `toast ${kind}`, dataset: { key: opts.key || "", kind }, role: kind === "error" ? "alert" : null },
    h("span", { class: "toast-text" }, text),
    opts.action ? h("button", { type: "button", class: "secondary", onclick: opts.action.run }, opts.action.label) : null,
    close,
  );
  close.addEventListener("click", () => item.remove());
  region.append(item);
  while (region.children.length > 4) region.firstElementChild?.remove();
  const ms = opts.ms ?? (kind === "error" ? 0 : 6000);
  if (ms) setTimeout(() => item.remove(), ms);
  return item;
}

/** Clear a keyed toast (the connection's, once it is live again). @param {string} key */
export function clearToast(key) {
  document.getElementById("toasts")?.querySelector(`[data-key="${key}"]`)?.remove();
}
