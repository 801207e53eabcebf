// Session Hub browser client: one live session, never losing its place.
//
//   import { connect } from "/static/hub-client.js";
//   const client = connect("morning-001", "participant", "Ana", null);
//   client.on("event", (msg) => render(msg));          // every durable event, once, in seq order
//   client.on("state", ({ state, reason }) => show(state));
//   const seq = await client.send("hrv_update", { hrv: 52 });
//
// Wire protocol: docs/protocol.md. Client API: docs/browser.md.
// No dependencies, no build step: an ES module that runs as it is in any modern browser
// (and in node >= 18 given a WebSocket implementation, which the unit tests use).

/**
 * @typedef {"connecting" | "open" | "resuming" | "closed"} ConnectionState
 *
 * @typedef {Object} HubMessage  A server frame (docs/protocol.md "Server to client").
 * @property {string} type
 * @property {string} session_id
 * @property {number | null} seq   null for control messages (welcome, ack, error, pong, presence)
 * @property {number} [prev_seq]    events: the seq of the previous event of this member's view (0: none)
 * @property {string} ts
 * @property {{user_id: string, name: string, role: string} | null} actor
 * @property {Record<string, any>} data
 *
 * @typedef {Object} StateChange  Payload of the "state" event.
 * @property {ConnectionState} state
 * @property {ConnectionState} previous
 * @property {string | null} reason   why: close reason name, "gap", "heartbeat_timeout", "closed_by_app", ...
 * @property {number | null} code     the WebSocket close code that caused it, if any
 * @property {number} attempt         reconnect attempt (0 on the first connection)
 * @property {number | null} delay    ms until the next attempt (state "resuming" only)
 * @property {number | null} lastSeq
 *
 * @typedef {Object} BackoffOptions
 * @property {number} [base]  first ceiling in ms (default 500)
 * @property {number} [cap]   largest ceiling in ms (default 30000)
 *
 * @typedef {Object} ConnectOptions
 * @property {string} [url]            hub base URL (http(s)://host:port); default: the page's origin
 * @property {string} [userId]         dev mode only: a stable user id (default: one kept in sessionStorage)
 * @property {() => (string | Promise<string>)} [getToken]  a fresh token: asked before every
 *           (re)connection and when the hub warns that the token expires (renewed in-band)
 * @property {number | null} [since]  start from this seq (replays everything after it); default: live from now
 * @property {BackoffOptions} [backoff]
 * @property {number} [heartbeatMs]    default: welcome.data.heartbeat_interval, else 30 s
 * @property {boolean} [refetchOnResumeUnavailable]  default true: GET .../content?include_replay=true
 * @property {typeof WebSocket} [WebSocket]  implementation to use (tests)
 * @property {typeof fetch} [fetch]          implementation to use (tests)
 * @property {() => number} [random]         Math.random replacement (tests)
 */

/** Close codes after which the client must not reconnect by itself (docs/protocol.md). */
export const CLOSE_NAMES = /** @type {Record<number, string>} */ ({
  1000: "normal",
  1001: "going_away",
  1006: "abnormal",
  1008: "policy_violation",
  1009: "message_too_big",
  1011: "unexpected_condition",
  1012: "service_restart",
  1013: "try_again_later",
  3000: "server_shutdown",
  3001: "slow_consumer",
  3002: "idle_timeout",
  3003: "token_expired",
  3004: "internal_error",
  3500: "bad_request",
  3501: "unauthorized",
  3503: "forbidden",
  3504: "not_found",
  3505: "session_full",
  3506: "session_ended",
  3507: "too_many_errors",
  3508: "rate_limited",
  3509: "too_many_connections",
  3510: "disconnected",
  4000: "dropped_by_client",
});

const RFC_RECONNECT = new Set([1001, 1006, 1011, 1012, 1013]);
/** Closes that say the hub is restarting (drain, 1012 service restart): it is back in seconds. */
const RESTARTING = new Set([3000, 1012]);
/** After a restart close, every attempt waits a uniform delay below RESTART_MAX_MS: a crowd
 * comes back within a couple of seconds, spread, instead of on a grown backoff. */
export const RESTART_MAX_MS = 2000;
/** Codes the client itself uses to cut a connection it wants to replace. */
const CLIENT_RECONNECT = 4000;

/**
 * Whether a close code means "reconnect (with since)".
 * 3000–3499 and 1001/1006/1011/1012/1013: yes. 3500–3999, 1008, 1009, 1000: no.
 * @param {number} code
 * @returns {boolean}
 */
export function shouldReconnect(code) {
  if (code >= 3000 && code < 3500) return true;
  if (code === CLIENT_RECONNECT) return true;
  return RFC_RECONNECT.has(code);
}

/**
 * Exponential backoff with full jitter: a uniform delay in [0, min(cap, base * 2^attempt)).
 * Spreads a crowd of clients that lost the same server over the whole window.
 * @param {number} attempt  0 for the first retry
 * @param {BackoffOptions} [options]
 * @param {() => number} [random]
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const base = options.base ?? 500;
  const cap = options.cap ?? 30000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The wait before reconnecting to a hub that said it restarts (close 3000 or 1012).
 * @param {() => number} [random]
 * @returns {number} milliseconds in [0, RESTART_MAX_MS)
 */
export function restartDelay(random = Math.random) {
  return Math.floor(random() * RESTART_MAX_MS);
}

/**
 * Decides, for each incoming event, whether the app sees it: exactly once, in order.
 * A member receives only the events of its audience (its *view*); each event names the
 * previous event of that view (`prev_seq`, docs/protocol.md "Views"). `lastSeq` is the
 * position up to which the view is complete: an event whose `prev_seq` is above it
 * reveals a missed event. `lastSeq` null means "nothing seen yet".
 */
export class SeqTracker {
  /** @param {number | null} [lastSeq] */
  constructor(lastSeq = null) {
    /** @type {number | null} */
    this.lastSeq = lastSeq;
  }

  /**
   * @param {number} seq
   * @param {number} [prevSeq]  the previous seq of the view; absent: seq - 1 (every event)
   * @returns {"deliver" | "duplicate" | "gap"}  "deliver" also records seq as seen
   */
  accept(seq, prevSeq) {
    if (this.lastSeq !== null && seq <= this.lastSeq) return "duplicate";
    const prev = typeof prevSeq === "number" ? prevSeq : seq - 1;
    if (this.lastSeq !== null && prev > this.lastSeq) return "gap";
    this.lastSeq = seq;
    return "deliver";
  }
}

/** The typed error a send() rejects with (and the "error" event carries). */
export class HubError extends Error {
  /**
   * @param {string} code     invalid, forbidden, not_found, conflict, rate_limited, unavailable, closed, ...
   * @param {string} message
   * @param {any} [details]
   * @param {string | null} [id]  the client id of the refused event
   */
  constructor(code, message, details = null, id = null) {
    super(`${code}: ${message}`);
    this.name = "HubError";
    this.code = code;
    this.hubMessage = message;
    this.details = details;
    this.id = id;
  }
}

/** @returns {string} a random id (crypto.randomUUID where the page is a secure context) */
export function newId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @returns {string} this tab's dev-mode user id (kept in sessionStorage) */
export function devUserId() {
  try {
    const store = globalThis.sessionStorage;
    let id = store.getItem("hub-user-id");
    if (!id) {
      id = "u-" + newId().replace(/-/g, "").slice(0, 12);
      store.setItem("hub-user-id", id);
    }
    return id;
  } catch {
    return "u-" + newId().replace(/-/g, "").slice(0, 12);
  }
}

/** Listeners by event name: `on(type, fn)` and `emit(type, payload)`. */
export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
  }

  /**
   * @param {string} type
   * @param {(payload: any) => void} fn
   * @returns {() => void} unsubscribe
   */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)?.add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  /** @param {string} type @param {any} payload */
  emit(type, payload) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(payload);
      } catch (err) {
        console.error("hub-client listener failed", type, err);
      }
    }
  }
}

/**
 * @typedef {Object} Pending
 * @property {string} id
 * @property {string} type
 * @property {Record<string, any>} data
 * @property {(seq: number) => void} resolve
 * @property {(err: HubError) => void} reject
 * @property {number} sends  how many times it went out
 */

/**
 * A connection to one session that survives drops. Events (subscribe with `on`):
 * - "state" (StateChange): connecting, open, resuming, closed
 * - "welcome" (HubMessage): after every (re)connection
 * - "event" (HubMessage): every durable event, exactly once, in seq order
 * - "error" (HubError): every error frame (also those that reject a send)
 * - "presence" (HubMessage): the participant count (and the first joiners), coalesced; participants only
 * - "resync" ({content, resume}): the hub could not replay from our seq; content was refetched
 * - "refreshed" (HubMessage): the hub took a renewed token (data.expires_at, data.expires_in)
 * - "message" (HubMessage): every raw frame, for debugging
 */
export class HubClient extends Emitter {
  /**
   * @param {string} sessionId
   * @param {"participant" | "instructor" | "observer"} role
   * @param {string | null} name
   * @param {string | null} token
   * @param {ConnectOptions} [options]
   */
  constructor(sessionId, role, name, token, options = {}) {
    super();
    this.sessionId = sessionId;
    this.role = role;
    this.name = name || null;
    this.token = token || null;
    this.options = options;
    /** @type {(() => (string | Promise<string>)) | null} */
    this.getToken = options.getToken || null;
    this.baseUrl = options.url || (globalThis.location ? globalThis.location.origin : "http://127.0.0.1:8000");
    this.userId = this.token || this.getToken ? null : options.userId || devUserId();
    /** @type {ConnectionState} */
    this.state = "closed";
    this.tracker = new SeqTracker(options.since ?? null);
    /** @type {Record<string, any> | null} */
    this.welcome = null;
    /** @type {Map<string, Pending>} */
    this.pending = new Map();
    this.attempt = 0;
    this.closedByApp = false;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.heartbeatTimer = null;
    this.watchdogTimer = null;
    /** The hub said it restarts: reconnect on the short restart schedule until welcomed. */
    this.restarting = false;
    this.reconnectTimer = null;
    this.lastReceived = 0;
    this.openedAt = 0;
    this.welcomed = false;
    /** @type {number | null} */
    this.forcedDelay = null;
    this.resyncing = false;
    /** @type {HubMessage[]} */
    this.held = [];
    /** Counters for dashboards and tests. */
    this.stats = { connects: 0, reconnects: 0, duplicatesDropped: 0, gaps: 0, delivered: 0, refreshes: 0 };
    /** Counts open() calls, so that a token arriving after a newer attempt is dropped. */
    this.openSeq = 0;
    this.WS = options.WebSocket || globalThis.WebSocket;
    this.fetchImpl = options.fetch || globalThis.fetch?.bind(globalThis);
    this.random = options.random || Math.random;
  }

  /** @returns {number | null} the last seq the app has seen */
  get lastSeq() {
    return this.tracker.lastSeq;
  }

  /** The WebSocket URL for the next attempt (with since = last seq seen). The token is not
   * in it (URLs end up in proxy logs): it goes in the `bearer.<token>` subprotocol. */
  socketUrl() {
    const u = new URL("/ws/live-updates", this.baseUrl);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("session_id", this.sessionId);
    u.searchParams.set("role", this.role);
    if (this.name) u.searchParams.set("name", this.name);
    if (!this.token && this.userId) u.searchParams.set("user_id", this.userId);
    if (this.lastSeq !== null) u.searchParams.set("since", String(this.lastSeq));
    return u.toString();
  }

  /** Open the connection (connect() calls this). */
  start() {
    this.closedByApp = false;
    this.open();
    return this;
  }

  /** @param {ConnectionState} state @param {Partial<StateChange>} [extra] */
  setState(state, extra = {}) {
    const previous = this.state;
    this.state = state;
    /** @type {StateChange} */
    const change = {
      state,
      previous,
      reason: null,
      code: null,
      attempt: this.attempt,
      delay: null,
      lastSeq: this.lastSeq,
      ...extra,
    };
    this.emit("state", change);
  }

  open() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.setState(this.stats.connects === 0 ? "connecting" : "resuming", { reason: "connecting" });
    this.stats.connects += 1;
    const attempt = ++this.openSeq;
    if (!this.getToken) {
      this.openSocket();
      return;
    }
    // A fresh token for every connection: the last one may have expired meanwhile.
    Promise.resolve()
      .then(() => /** @type {() => (string | Promise<string>)} */ (this.getToken)())
      .then(
        (token) => {
          if (attempt !== this.openSeq || this.closedByApp) return;
          this.token = token || null;
          this.openSocket();
        },
        (err) => {
          if (attempt !== this.openSeq || this.closedByApp) return;
          console.error("hub-client getToken failed", err);
          this.afterClose(1006, "token_unavailable");
        },
      );
  }

  openSocket() {
    let ws;
    try {
      ws = this.token ? new this.WS(this.socketUrl(), [`bearer.${this.token}`]) : new this.WS(this.socketUrl());
    } catch (err) {
      this.afterClose(1006, "connect_failed");
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastReceived = Date.now();
      let msg;
      try {
        msg = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data));
      } catch {
        return;
      }
      this.handle(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.afterClose(ev.code, ev.reason || CLOSE_NAMES[ev.code] || "closed");
    };
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  /** @param {HubMessage} msg */
  handle(msg) {
    this.emit("message", msg);
    switch (msg.type) {
      case "welcome":
        return this.onWelcome(msg);
      case "ack":
        return this.onAck(msg);
      case "error":
        return this.onError(msg);
      case "pong":
        return;
      case "token_expiring":
        this.renewToken();
        return;
      case "refreshed":
        this.stats.refreshes += 1;
        this.emit("refreshed", msg);
        return;
      case "presence":
        return this.emit("presence", msg);
      default:
        if (typeof msg.seq === "number") this.onEvent(msg);
    }
  }

  /** @param {HubMessage} msg */
  onWelcome(msg) {
    const data = msg.data || {};
    this.welcome = data;
    this.welcomed = true;
    this.restarting = false;
    const resume = data.resume;
    if (this.lastSeq === null) {
      // Fresh start: live from the session's head on.
      this.tracker.lastSeq = typeof data.head_seq === "number" ? data.head_seq : null;
    } else if (resume && resume.recovered === false) {
      this.beginResync(resume, data.head_seq);
    }
    if (this.stats.connects > 1) this.stats.reconnects += 1;
    this.openedAt = Date.now();
    this.startHeartbeat((data.heartbeat_interval || 30) * 1000);
    this.setState("open", { reason: resume && resume.since != null ? "resumed" : "welcome" });
    this.emit("welcome", msg);
    // Everything not yet acked goes out again with the same id; the hub dedupes by id.
    for (const p of this.pending.values()) this.transmit(p);
  }

  /** @param {HubMessage} msg */
  onEvent(msg) {
    if (this.resyncing) {
      this.held.push(msg);
      return;
    }
    const verdict = this.tracker.accept(/** @type {number} */ (msg.seq), msg.prev_seq);
    if (verdict === "duplicate") {
      this.stats.duplicatesDropped += 1;
      return;
    }
    if (verdict === "gap") {
      // Something was skipped: reconnect with since = last seq seen; the hub replays it.
      this.stats.gaps += 1;
      this.reconnectNow("gap");
      return;
    }
    this.stats.delivered += 1;
    this.emit("event", msg);
  }

  /** @param {HubMessage} msg */
  onAck(msg) {
    const id = msg.data && msg.data.id;
    const p = id != null ? this.pending.get(id) : undefined;
    if (!p) return;
    this.pending.delete(id);
    p.resolve(msg.data.seq);
  }

  /** @param {HubMessage} msg */
  onError(msg) {
    const d = msg.data || {};
    const err = new HubError(d.code || "error", d.message || "", d.details ?? null, d.id ?? null);
    if (d.code !== "resume_unavailable") {
      const p = d.id != null ? this.pending.get(d.id) : undefined;
      if (p) {
        this.pending.delete(d.id);
        p.reject(err);
      }
    }
    this.emit("error", err);
  }

  /**
   * The hub cannot replay from our seq: refetch the session content, hand the app what
   * the replay still holds after our seq, then continue live after the head.
   * @param {any} resume
   * @param {number} head
   */
  beginResync(resume, head) {
    const from = this.lastSeq ?? 0;
    this.resyncing = true;
    this.held = [];
    const finish = (/** @type {any} */ content) => {
      if (content && content.replay && Array.isArray(content.replay.messages)) {
        const missed = content.replay.messages.filter(
          (/** @type {HubMessage} */ m) => typeof m.seq === "number" && m.seq > from && m.seq <= head,
        );
        // Deliver what can still be recovered, in order, without the gap check (the log is trimmed).
        for (const m of missed) {
          this.tracker.lastSeq = /** @type {number} */ (m.seq);
          this.stats.delivered += 1;
          this.emit("event", m);
        }
      }
      this.tracker.lastSeq = head;
      this.emit("resync", { content, resume });
      this.resyncing = false;
      const held = this.held;
      this.held = [];
      for (const m of held) this.onEvent(m);
    };
    if (this.options.refetchOnResumeUnavailable === false || !this.fetchImpl) {
      finish(null);
      return;
    }
    this.fetchContent()
      .then(finish)
      .catch(() => finish(null));
  }

  /** The hub warned that the token expires soon: get a fresh one and hand it over in-band. */
  async renewToken() {
    if (!this.getToken) return; // the hub closes at expiry (3003); without getToken the reconnect fails
    const ws = this.ws;
    let token;
    try {
      token = await this.getToken();
    } catch (err) {
      console.error("hub-client getToken failed", err);
      return;
    }
    if (!token || this.ws !== ws || !ws || ws.readyState !== 1) return;
    this.token = token;
    ws.send(JSON.stringify({ type: "refresh", id: newId(), data: { token } }));
  }

  /** GET /api/v2/session/{id}/content?include_replay=true */
  async fetchContent() {
    const u = new URL(`/api/v2/session/${encodeURIComponent(this.sessionId)}/content`, this.baseUrl);
    u.searchParams.set("include_replay", "true");
    /** @type {Record<string, string>} */
    const headers = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await this.fetchImpl(u.toString(), { headers });
    if (!res.ok) throw new Error(`content: HTTP ${res.status}`);
    return res.json();
  }

  /** @param {number} ms */
  startHeartbeat(ms) {
    this.stopHeartbeat();
    const interval = this.options.heartbeatMs || ms || 30000;
    this.lastReceived = Date.now();
    this.heartbeatTimer = setInterval(() => {
      if (this.ws && this.ws.readyState === 1) this.ws.send('{"type":"heartbeat"}');
    }, interval);
    // Nothing heard for two intervals plus 5 s (not even a pong): the socket is dead without
    // knowing it. Checked every second, so it is noticed then, not at the next heartbeat.
    const deadAfter = 2 * interval + 5000;
    this.watchdogTimer = setInterval(() => {
      if (this.ws && this.ws.readyState === 1 && Date.now() - this.lastReceived > deadAfter) {
        this.reconnectNow("heartbeat_timeout");
      }
    }, Math.min(1000, interval));
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.watchdogTimer);
    this.heartbeatTimer = null;
    this.watchdogTimer = null;
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  afterClose(code, reason) {
    this.stopHeartbeat();
    // The backoff starts over only after a connection that lasted: a hub that accepts and
    // closes at once (slow consumer, restart loop) keeps the delays growing.
    if (this.welcomed && Date.now() - this.openedAt > 10000) this.attempt = 0;
    this.welcomed = false;
    this.resyncing = false;
    this.held = [];
    if (this.closedByApp) {
      this.failPending("closed", "the connection was closed");
      this.setState("closed", { reason: "closed_by_app", code });
      return;
    }
    if (!shouldReconnect(code)) {
      this.failPending("closed", `the hub closed the connection (${code} ${reason})`);
      this.setState("closed", { reason: CLOSE_NAMES[code] || reason, code });
      return;
    }
    // Told the hub restarts: come back within a couple of seconds, spread with jitter, and
    // keep to that schedule while it is down (refused connections, 1006) until welcomed.
    if (RESTARTING.has(code)) this.restarting = true;
    const wait = this.restarting ? restartDelay(this.random) : backoffDelay(this.attempt, this.options.backoff, this.random);
    const delay = this.forcedDelay ?? wait;
    this.forcedDelay = null;
    this.attempt += 1;
    this.setState("resuming", { reason: CLOSE_NAMES[code] || reason, code, delay });
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  /** @param {string} code @param {string} message */
  failPending(code, message) {
    for (const p of this.pending.values()) p.reject(new HubError(code, message, null, p.id));
    this.pending.clear();
  }

  /** @param {Pending} p */
  transmit(p) {
    if (!this.ws || this.ws.readyState !== 1 || !this.welcomed) return;
    p.sends += 1;
    this.ws.send(JSON.stringify({ type: p.type, id: p.id, data: p.data }));
  }

  /**
   * Send a durable event. Resolves with its seq once the hub has stored it; rejects with a
   * HubError. Until acked it is sent again (same id) after every reconnect.
   * @param {string} type
   * @param {Record<string, any>} data
   * @param {{id?: string}} [opts]
   * @returns {Promise<number>}
   */
  send(type, data, opts = {}) {
    if (this.state === "closed" && (this.closedByApp || this.stats.connects > 0)) {
      return Promise.reject(new HubError("closed", "the connection is closed"));
    }
    const id = opts.id || newId();
    return new Promise((resolve, reject) => {
      /** @type {Pending} */
      const p = { id, type, data: data || {}, resolve, reject, sends: 0 };
      this.pending.set(id, p);
      this.transmit(p);
    });
  }

  /**
   * Skip the wait of the current backoff (a "Reconnect now" button), or replace a live
   * connection at once (reason "gap", "heartbeat_timeout").
   * @param {string} [reason]
   */
  reconnectNow(reason = "reconnect_now") {
    if (this.closedByApp) return;
    if (this.ws) {
      this.forcedDelay = 0;
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(CLIENT_RECONNECT, reason);
      } catch {
        /* already closing */
      }
      this.afterClose(CLIENT_RECONNECT, reason);
    } else if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.open();
    }
  }

  /**
   * Cut the socket as a network drop would, and wait `holdMs` before reconnecting
   * (diagnostics and tests; `reconnectNow()` ends the wait early).
   * @param {number} [holdMs]
   */
  drop(holdMs = 0) {
    if (!this.ws) return;
    this.forcedDelay = holdMs;
    const ws = this.ws;
    this.ws = null;
    try {
      ws.close(CLIENT_RECONNECT, "dropped");
    } catch {
      /* ignore */
    }
    this.afterClose(CLIENT_RECONNECT, "dropped_by_client");
  }

  /** Close for good; pending sends are rejected with code "closed". */
  close() {
    this.closedByApp = true;
    clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000, "bye");
      } catch {
        /* ignore */
      }
    }
    if (this.state !== "closed") this.afterClose(1000, "closed_by_app");
  }
}

/**
 * Connect to a session. In dev mode (HUB_DEV=1) `token` may be null.
 * @param {string} session   session_id
 * @param {"participant" | "instructor" | "observer"} role
 * @param {string | null} name  display name
 * @param {string | null} token JWT, or null in dev mode
 * @param {ConnectOptions} [options]
 * @returns {HubClient}
 */
export function connect(session, role, name, token, options = {}) {
  return new HubClient(session, role, name, token, options).start();
}
