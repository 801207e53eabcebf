// Unit tests of static/hub-client.js with a fake WebSocket: ordering, dedupe, gaps,
// backoff, resend with the same id, close codes, tokens. Run: node --test static/tests/
// (tests/test_browser_client.py runs them under pytest, so `make test` does too).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { HubClient, SeqTracker, backoffDelay, shouldReconnect } from "../hub-client.js";

class FakeSocket {
  /** @type {FakeSocket[]} */
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
  }
  // test helpers
  welcome(data = {}) {
    this.readyState = 1;
    this.push({ type: "welcome", seq: null, data: { head_seq: 0, heartbeat_interval: 30, ...data } });
  }
  push(msg) {
    this.onmessage({ data: JSON.stringify({ session_id: "s", ts: "2026-01-01T00:00:00Z", actor: null, ...msg }) });
  }
  event(seq, type = "announcement") {
    this.push({ type, seq, data: { message: `m${seq}` } });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
  get since() {
    return new URL(this.url).searchParams.get("since");
  }
}

/** @type {HubClient[]} */
const made = [];
afterEach(() => {
  // close every client so no heartbeat or reconnect timer keeps node alive
  for (const c of made.splice(0)) c.close();
});

const last = () => FakeSocket.all[FakeSocket.all.length - 1];
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

function client(options = {}) {
  FakeSocket.all = [];
  const c = new HubClient("s", "participant", "Ana", null, {
    url: "http://hub.test",
    userId: "ana",
    WebSocket: /** @type {any} */ (FakeSocket),
    random: () => 0, // no jitter: reconnect at once
    ...options,
  });
  made.push(c);
  const seen = [];
  const states = [];
  c.on("event", (m) => seen.push(m.seq));
  c.on("state", (s) => states.push(`${s.state}:${s.reason}`));
  c.start();
  return { c, seen, states };
}

test("SeqTracker: in order once, duplicates dropped, gaps reported", () => {
  const t = new SeqTracker(3);
  assert.equal(t.accept(3), "duplicate");
  assert.equal(t.accept(4), "deliver");
  assert.equal(t.accept(4), "duplicate");
  assert.equal(t.accept(6), "gap");
  assert.equal(t.lastSeq, 4);
  assert.equal(new SeqTracker().accept(17), "deliver");
});

test("SeqTracker: a view skips events not meant for it, prev_seq reveals a missed one", () => {
  const t = new SeqTracker(3);
  assert.equal(t.accept(7, 3), "deliver"); // 4-6 were staff events: not a gap
  assert.equal(t.accept(9, 8), "gap"); // 8 was in this view and did not arrive
  assert.equal(t.lastSeq, 7);
  assert.equal(t.accept(8, 7), "deliver");
  assert.equal(t.accept(12, 2), "deliver"); // prev at or below what is held
  assert.equal(t.accept(12, 8), "duplicate");
});

test("a participant's view: gaps by prev_seq reconnect with since; presence is passed on", async () => {
  const { c, seen } = client();
  const counts = [];
  c.on("presence", (m) => counts.push(m.data.participant_count));
  last().welcome({ head_seq: 4 });
  last().push({ type: "announcement", seq: 6, prev_seq: 2, data: {} });
  last().push({ type: "presence", seq: null, data: { participant_count: 7, participants: [] } });
  const first = last();
  first.push({ type: "prompt", seq: 10, prev_seq: 8, data: {} }); // 8 missing
  assert.deepEqual(seen, [6]);
  assert.deepEqual(counts, [7]);
  await tick(5);
  assert.notEqual(last(), first);
  assert.equal(last().since, "6");
  last().welcome({ head_seq: 10, resume: { since: 6, recovered: true } });
  last().push({ type: "announcement", seq: 8, prev_seq: 6, data: {} });
  last().push({ type: "prompt", seq: 10, prev_seq: 8, data: {} });
  assert.deepEqual(seen, [6, 8, 10]);
});

test("backoff: full jitter under an exponential ceiling with a cap", () => {
  assert.equal(backoffDelay(0, {}, () => 0.999), 499);
  assert.equal(backoffDelay(3, { base: 100 }, () => 0.5), 400);
  assert.equal(backoffDelay(40, { base: 500, cap: 30000 }, () => 0.999), 29970);
  assert.equal(backoffDelay(5, {}, () => 0), 0);
});

test("close codes: reconnect on 3000-3499 and RFC transient codes only", () => {
  for (const code of [3000, 3001, 3002, 3004, 3499, 1001, 1006, 1011, 1012, 1013]) assert.ok(shouldReconnect(code), code);
  for (const code of [1000, 1008, 1009, 3500, 3503, 3504, 3506, 3507, 3999]) assert.ok(!shouldReconnect(code), code);
});

test("fresh connect starts live at head; replayed duplicates are dropped", () => {
  const { c, seen } = client();
  assert.equal(last().since, null);
  last().welcome({ head_seq: 5 });
  last().event(5);
  last().event(6);
  last().event(6);
  last().event(7);
  assert.deepEqual(seen, [6, 7]);
  assert.equal(c.stats.duplicatesDropped, 2);
});

test("drop and resume: since = last seq, every event once and in order", async () => {
  const { c, seen, states } = client();
  last().welcome({ head_seq: 2 });
  last().event(3);
  last().serverClose(3001, "slow_consumer");
  assert.equal(c.state, "resuming");
  await tick(5);
  assert.equal(last().since, "3");
  last().welcome({ head_seq: 6, resume: { since: 3, recovered: true } });
  last().event(3); // overlap from a sloppy server: dropped
  last().event(4);
  last().event(5);
  last().event(6);
  assert.deepEqual(seen, [3, 4, 5, 6]);
  assert.ok(states.includes("resuming:slow_consumer"));
  assert.equal(c.stats.reconnects, 1);
});

test("a gap makes the client reconnect with since and deliver nothing out of order", async () => {
  const { c, seen } = client();
  last().welcome({ head_seq: 0 });
  last().event(1);
  const first = last();
  first.event(3); // 2 is missing
  assert.deepEqual(seen, [1]);
  assert.equal(c.stats.gaps, 1);
  await tick(5);
  assert.notEqual(last(), first);
  assert.equal(last().since, "1");
  last().welcome({ head_seq: 3, resume: { since: 1, recovered: true } });
  last().event(2);
  last().event(3);
  assert.deepEqual(seen, [1, 2, 3]);
});

test("send: resolves with the ack's seq; resent with the same id after a reconnect", async () => {
  const { c } = client();
  const sent = c.send("hrv_update", { hrv: 50 }); // queued until welcome
  assert.equal(last().sent.length, 0);
  last().welcome();
  const frame = last().sent[0];
  assert.equal(frame.type, "hrv_update");
  last().serverClose(1006);
  await tick(5);
  last().welcome({ resume: { since: 0, recovered: true } });
  assert.equal(last().sent[0].id, frame.id);
  last().push({ type: "ack", seq: null, data: { id: frame.id, seq: 9, duplicate: true } });
  assert.equal(await sent, 9);
  assert.equal(c.pending.size, 0);
});

test("send: rejected with the typed error; the connection stays open", async () => {
  const { c } = client();
  last().welcome();
  const sent = c.send("technique_changed", { technique: "Box" });
  const id = last().sent[0].id;
  const errors = [];
  c.on("error", (e) => errors.push(e.code));
  last().push({ type: "error", seq: null, data: { id, code: "forbidden", message: "no" } });
  await assert.rejects(sent, (err) => err.code === "forbidden" && err.hubMessage === "no");
  assert.deepEqual(errors, ["forbidden"]);
  assert.equal(c.state, "open");
});

test("do-not-reconnect codes close for good and reject what is pending", async () => {
  const { c, states } = client();
  last().welcome();
  const sent = c.send("response", { text: "hi" });
  last().serverClose(3506, "session_ended");
  await assert.rejects(sent, (err) => err.code === "closed");
  await tick(5);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(c.state, "closed");
  assert.ok(states.includes("closed:session_ended"));
  await assert.rejects(c.send("response", { text: "again" }), (err) => err.code === "closed");
});

test("resume_unavailable: refetch content, deliver what it still holds, continue after head", async () => {
  const fetched = [];
  const fetch = async (url) => {
    fetched.push(url);
    return {
      ok: true,
      json: async () => ({
        replay: { messages: [4, 5, 6, 7].map((seq) => ({ type: "announcement", seq, data: {} })) },
      }),
    };
  };
  const { c, seen } = client({ fetch });
  last().welcome({ head_seq: 2 });
  last().serverClose(1012);
  await tick(5);
  const resyncs = [];
  c.on("resync", (r) => resyncs.push(r));
  last().welcome({ head_seq: 7, resume: { since: 2, recovered: false, reason: "trimmed", head_seq: 7, retained_from: 4 } });
  last().push({ type: "error", seq: null, data: { id: null, code: "resume_unavailable", message: "trimmed" } });
  last().event(8); // live, held until the refetch is done
  await tick(5);
  assert.match(fetched[0], /\/api\/v2\/session\/s\/content\?include_replay=true$/);
  assert.deepEqual(seen, [4, 5, 6, 7, 8]);
  assert.equal(resyncs.length, 1);
});

test("backoff grows while reconnects keep failing", async () => {
  const states = [];
  const { c } = client({ random: () => 0.999, backoff: { base: 1, cap: 1000 } });
  c.on("state", (s) => s.state === "resuming" && s.delay != null && states.push(s.delay));
  for (let i = 0; i < 4; i++) {
    last().serverClose(1006);
    await tick(20);
  }
  assert.deepEqual(states, [0, 1, 3, 7]);
  c.close();
  assert.equal(c.state, "closed");
});

test("the token goes in the bearer subprotocol, never in the URL", () => {
  const { c } = client({ userId: undefined });
  c.close();
  FakeSocket.all = [];
  const withToken = new HubClient("s", "participant", "Ana", "tok.en.sig", {
    url: "http://hub.test",
    WebSocket: /** @type {any} */ (FakeSocket),
  }).start();
  made.push(withToken);
  assert.deepEqual(last().protocols, ["bearer.tok.en.sig"]);
  assert.equal(new URL(last().url).searchParams.get("token"), null);
  assert.equal(new URL(last().url).searchParams.get("user_id"), null);
});

test("getToken: asked before every connection and when the hub warns of expiry", async () => {
  let n = 0;
  const { c } = client({ userId: undefined, getToken: async () => `t${++n}` });
  await tick();
  assert.deepEqual(last().protocols, ["bearer.t1"]);
  last().welcome();
  last().push({ type: "token_expiring", seq: null, data: { expires_in: 30 } });
  await tick();
  assert.deepEqual(last().sent.at(-1).type, "refresh");
  assert.deepEqual(last().sent.at(-1).data, { token: "t2" });
  last().push({ type: "refreshed", seq: null, data: { expires_in: 600 } });
  assert.equal(c.stats.refreshes, 1);
  last().serverClose(3003, "token_expired");
  await tick(5);
  assert.equal(FakeSocket.all.length, 2, "reconnected");
  assert.deepEqual(last().protocols, ["bearer.t3"], "with a fresh token");
});
