// Session Hub over Server-Sent Events: one live session, read-only, never losing its place.
//
//   import { connectStream } from "/static/hub-stream.js";
//   const stream = connectStream("morning-001", "observer", "dashboard", null, { since: 0 });
//   stream.on("event", (msg) => render(msg));   // every durable event, once, in seq order
//   stream.on("state", ({ state, reason }) => show(state));
//
// The same events and states as hub-client.js, for pages that only read (dashboards) and
// networks that refuse WebSocket upgrades. It reads GET /api/v2/session/{id}/stream with
// the browser's EventSource, which reconnects by itself after a network drop and resumes
// with Last-Event-ID; the hub's `close` event (drain, slow consumer, session ended, ...)
// and refusals are handled here, with the close codes, backoff and tokens of hub-client.js.
// Wire format: docs/protocol.md, "Server-Sent Events".

import { CLOSE_NAMES, Emitter, HubError, SeqTracker, backoffDelay, devUserId, shouldReconnect } from "./hub-client.js";

/** @typedef {import("./hub-client.js").HubMessage} HubMessage */
/** @typedef {import("./hub-client.js").ConnectionState} ConnectionState */

/** EventSource dispatches by `event:` name, so every type a stream may carry is listed. */
export const STREAM_TYPES = [
  "welcome",
  "error",
  "token_expiring",
  "presence",
  "close",
  "session_started",
  "session_paused",
  "session_resumed",
  "session_ending",
  "session_ended",
  "participant_joined",
  "participant_left",
  "technique_changed",
  "hrv_update",
  "hrv_summary",
  "hrv_milestone",
  "achievement_unlocked",
  "prompt",
  "response",
  "announcement",
  "session_update",
  "note",
  "feedback",
  "session_summary",
];

/** What a refused stream's HTTP status means, as the close code a socket refused the same
 * way would have got (hub/errors.py; tests/test_stream_client_types.py keeps them in step).
 * A status not listed (a network failure, a proxy's 502) is retried as 1006. */
export const STATUS_CLOSE = /** @type {Record<number, number>} */ ({
  204: 3506,
  400: 3500,
  401: 3501,
  403: 3503,
  404: 3504,
  405: 3500,
  409: 3505,
  410: 3503,
  413: 1009,
  422: 3500,
  429: 3509,
  500: 1011,
  503: 3004,
});
const CLIENT_RECONNECT = 4000;

/**
 * @typedef {Object} StreamOptions
 * @property {string} [url]           hub base URL; default: the page's origin
 * @property {number | null} [since] start from this seq; default: live from now
 * @property {() => (string | Promise<string>)} [getToken]  a fresh token for every (re)connection
 * @property {import("./hub-client.js").BackoffOptions} [backoff]
 * @property {typeof EventSource} [EventSource]  implementation to use (tests)
 * @property {typeof fetch} [fetch]
 * @property {() => number} [random]
 */

export class StreamClient extends Emitter {
  /**
   * @param {string} sessionId
   * @param {"observer" | "participant"} role
   * @param {string | null} name
   * @param {string | null} token   sent as ?token= (EventSource cannot set headers): use a short-lived one
   * @param {StreamOptions} [options]
   */
  constructor(sessionId, role, name, token, options = {}) {
    super();
    this.sessionId = sessionId;
    this.role = role;
    this.name = name || null;
    this.token = token || null;
    this.options = options;
    this.getToken = options.getToken || null;
    this.baseUrl = options.url || (globalThis.location ? globalThis.location.origin : "http://127.0.0.1:8000");
    this.userId = this.token || this.getToken ? null : devUserId();
    /** @type {ConnectionState} */
    this.state = "closed";
    this.tracker = new SeqTracker(options.since ?? null);
    /** @type {Record<string, any> | null} */
    this.welcome = null;
    /** @type {EventSource | null} */
    this.es = null;
    this.attempt = 0;
    this.openSeq = 0;
    this.welcomes = 0;
    this.openedAt = 0;
    this.closedByApp = false;
    /** @type {number | null} */
    this.forcedDelay = null;
    this.reconnectTimer = 0;
    this.stats = { connects: 0, reconnects: 0, duplicatesDropped: 0, gaps: 0, delivered: 0 };
    this.ES = options.EventSource || globalThis.EventSource;
    this.fetchImpl = options.fetch || globalThis.fetch?.bind(globalThis);
    this.random = options.random || Math.random;
  }

  /** @returns {number | null} the last seq the app has seen */
  get lastSeq() {
    return this.tracker.lastSeq;
  }

  start() {
    this.closedByApp = false;
    this.open();
    return this;
  }

  /** @param {ConnectionState} state @param {Record<string, any>} [extra] */
  setState(state, extra = {}) {
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous, reason: null, code: null, attempt: this.attempt, delay: null, lastSeq: this.lastSeq, ...extra });
  }

  /** The stream's URL for the next attempt (since = last seq seen). */
  streamUrl() {
    const u = new URL(`/api/v2/session/${encodeURIComponent(this.sessionId)}/stream`, this.baseUrl);
    u.searchParams.set("role", this.role);
    if (this.name) u.searchParams.set("name", this.name);
    if (this.token) u.searchParams.set("token", this.token);
    else if (this.userId) u.searchParams.set("user_id", this.userId);
    if (this.lastSeq !== null) u.searchParams.set("since", String(this.lastSeq));
    return u.toString();
  }

  async open() {
    clearTimeout(this.reconnectTimer);
    this.setState(this.stats.connects === 0 ? "connecting" : "resuming", { reason: "connecting" });
    this.stats.connects += 1;
    const attempt = ++this.openSeq;
    if (this.getToken) {
      try {
        this.token = (await this.getToken()) || null;
      } catch (err) {
        console.error("hub-stream getToken failed", err);
        if (attempt === this.openSeq && !this.closedByApp) this.afterClose(1006, "token_unavailable");
        return;
      }
      if (attempt !== this.openSeq || this.closedByApp) return;
    }
    const url = this.streamUrl();
    const es = new this.ES(url);
    this.es = es;
    for (const type of STREAM_TYPES) es.addEventListener(type, (ev) => this.onMessage(es, /** @type {MessageEvent} */ (ev)));
    es.onerror = () => this.onFailure(es, url);
  }

  /** @param {EventSource} es @param {MessageEvent} ev */
  onMessage(es, ev) {
    if (this.es !== es) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (ev.type === "close") {
      // The hub ends the stream: decide here (a plain EventSource would always come back).
      this.closeSource();
      this.afterClose(msg.code, msg.reason || CLOSE_NAMES[msg.code] || "closed");
      return;
    }
    this.emit("message", msg);
    if (msg.type === "welcome") this.onWelcome(msg);
    else if (msg.type === "error") {
      const d = msg.data || {};
      this.emit("error", new HubError(d.code || "error", d.message || "", d.details ?? null, d.id ?? null));
    } else if (msg.type === "presence") {
      this.emit("presence", msg); // participants: the coalesced count (docs/protocol.md)
    } else if (msg.type === "token_expiring") {
      // A stream cannot renew in-band: open the next one with a fresh token before expiry.
      if (this.getToken) this.reconnectNow("token_expiring");
    } else if (typeof msg.seq === "number") this.onEvent(msg);
  }

  /** @param {HubMessage} msg */
  onWelcome(msg) {
    const data = msg.data || {};
    this.welcome = data;
    const resume = data.resume;
    if (this.lastSeq === null) {
      this.tracker.lastSeq = typeof data.head_seq === "number" ? data.head_seq : null;
    } else if (resume && resume.recovered === false) {
      this.tracker.lastSeq = data.head_seq; // the hub goes on after its head; refetch the content
      this.emit("resync", { content: null, resume });
    }
    if (this.welcomes++ > 0) this.stats.reconnects += 1;
    this.openedAt = Date.now();
    this.setState("open", { reason: resume && resume.since != null ? "resumed" : "welcome" });
    this.emit("welcome", msg);
  }

  /** @param {HubMessage} msg */
  onEvent(msg) {
    // prev_seq: the previous event of this member's view (docs/protocol.md), when the hub says.
    const verdict = this.tracker.accept(/** @type {number} */ (msg.seq), /** @type {any} */ (msg).prev_seq);
    if (verdict === "duplicate") {
      this.stats.duplicatesDropped += 1;
    } else if (verdict === "gap") {
      this.stats.gaps += 1;
      this.reconnectNow("gap");
    } else {
      this.stats.delivered += 1;
      this.emit("event", msg);
    }
  }

  /**
   * The stream failed. Still CONNECTING: the browser retries by itself (network drop, hub
   * restart) and resumes with Last-Event-ID. CLOSED: it was refused (an HTTP status), so
   * ask the hub why, and reconnect or stop as a socket would after that close code.
   * @param {EventSource} es @param {string} url
   */
  async onFailure(es, url) {
    if (this.es !== es) return;
    if (es.readyState !== 2) {
      if (this.state === "open") this.setState("resuming", { reason: "network", code: 1006 });
      return;
    }
    this.closeSource();
    let status = 0;
    try {
      const probe = new AbortController();
      const res = await this.fetchImpl(url, { signal: probe.signal, headers: { accept: "text/event-stream" } });
      status = res.status;
      probe.abort();
    } catch {
      status = 0; // unreachable: retry
    }
    let code = STATUS_CLOSE[status] ?? 1006;
    if (code === 3501 && this.getToken) code = 3003; // a fresh token may fix it: retry
    this.afterClose(code, CLOSE_NAMES[code] || `http_${status}`);
  }

  closeSource() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  /** @param {number} code @param {string} reason */
  afterClose(code, reason) {
    if (this.welcomes > 0 && Date.now() - this.openedAt > 10000) this.attempt = 0;
    if (this.closedByApp) {
      this.setState("closed", { reason: "closed_by_app", code });
      return;
    }
    if (!shouldReconnect(code)) {
      this.setState("closed", { reason: CLOSE_NAMES[code] || reason, code });
      return;
    }
    const delay = this.forcedDelay ?? backoffDelay(this.attempt, this.options.backoff, this.random);
    this.forcedDelay = null;
    this.attempt += 1;
    this.setState("resuming", { reason: CLOSE_NAMES[code] || reason, code, delay });
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  /** Replace the stream at once, or skip the wait of the current backoff. @param {string} [reason] */
  reconnectNow(reason = "reconnect_now") {
    if (this.closedByApp) return;
    if (this.es) {
      this.forcedDelay = 0;
      this.closeSource();
      this.afterClose(CLIENT_RECONNECT, reason);
    } else if (this.state === "resuming") {
      this.open();
    }
  }

  /** Cut the stream as a network drop would, and wait `holdMs` before reconnecting. @param {number} [holdMs] */
  drop(holdMs = 0) {
    if (!this.es) return;
    this.forcedDelay = holdMs;
    this.closeSource();
    this.afterClose(CLIENT_RECONNECT, "dropped_by_client");
  }

  /** Close for good. */
  close() {
    this.closedByApp = true;
    this.openSeq += 1;
    clearTimeout(this.reconnectTimer);
    this.closeSource();
    if (this.state !== "closed") this.afterClose(1000, "closed_by_app");
  }
}

/**
 * Read a session as Server-Sent Events. In dev mode (HUB_DEV=1) `token` may be null.
 * @param {string} session
 * @param {"observer" | "participant"} role
 * @param {string | null} name
 * @param {string | null} token
 * @param {StreamOptions} [options]
 */
export function connectStream(session, role, name, token, options = {}) {
  return new StreamClient(session, role, name, token, options).start();
}
