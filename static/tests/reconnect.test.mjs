// hub-client.js after a restart close and on a silent socket: a hub that says it restarts
// (3000, 1012) is reconnected to within a couple of seconds, spread with jitter, however
// many attempts failed before; a socket that hears nothing for two heartbeat intervals
// plus 5 s is replaced then, not at the next heartbeat. Run: node --test static/tests/
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { HubClient, RESTART_MAX_MS, restartDelay } from "../hub-client.js";

class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  welcome(data = {}) {
    this.readyState = 1;
    this.onmessage({ data: JSON.stringify({ type: "welcome", seq: null, data: { head_seq: 0, heartbeat_interval: 30, ...data } }) });
  }
  serverClose(code) {
    this.readyState = 3;
    this.onclose({ code, reason: "" });
  }
}

const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.close();
});

function client(random, options = {}) {
  FakeSocket.all = [];
  const c = new HubClient("s", "participant", "Ana", null, {
    url: "http://hub.test",
    userId: "ana",
    WebSocket: FakeSocket,
    random,
    ...options,
  });
  made.push(c);
  const delays = [];
  c.on("state", (s) => s.state === "resuming" && s.delay != null && delays.push(s.delay));
  c.start();
  return { c, delays };
}

test("restartDelay spreads over [0, 2000) ms", () => {
  assert.equal(restartDelay(() => 0), 0);
  assert.equal(restartDelay(() => 0.999999), RESTART_MAX_MS - 1);
  assert.equal(RESTART_MAX_MS, 2000);
});

test("after 3000 or 1012 every attempt waits at most 2 s until welcomed, then backoff applies again", () => {
  for (const code of [3000, 1012]) {
    const { c, delays } = client(() => 0.999);
    FakeSocket.all[0].welcome();
    // Many failures first: the ordinary backoff ceiling has grown to 30 s.
    c.attempt = 10;
    FakeSocket.all[0].serverClose(code);
    assert.ok(delays[0] < RESTART_MAX_MS, `${code}: ${delays[0]}`);
    // The hub is still down: refused connections keep to the restart schedule.
    for (let i = 0; i < 5; i++) {
      c.reconnectNow();
      FakeSocket.all[FakeSocket.all.length - 1].serverClose(1006);
    }
    assert.ok(delays.every((d) => d < RESTART_MAX_MS), delays.join(","));
    // Welcomed again: a later drop uses the backoff (which grows with failed attempts).
    c.reconnectNow();
    FakeSocket.all[FakeSocket.all.length - 1].welcome();
    c.attempt = 10;
    FakeSocket.all[FakeSocket.all.length - 1].serverClose(1006);
    assert.ok(delays[delays.length - 1] > RESTART_MAX_MS, `backoff again: ${delays[delays.length - 1]}`);
    c.close();
  }
});

test("a crowd told to restart comes back spread over the window", () => {
  const spread = [];
  for (let i = 0; i < 20; i++) {
    const { delays } = client(() => i / 20);
    FakeSocket.all[0].welcome();
    FakeSocket.all[0].serverClose(3000);
    spread.push(delays[0]);
  }
  assert.equal(new Set(spread).size, 20);
  assert.ok(Math.max(...spread) < RESTART_MAX_MS && Math.max(...spread) - Math.min(...spread) > 1500);
});

test("a silent socket is replaced two intervals plus 5 s after the last frame, not at the next heartbeat", (t) => {
  t.mock.timers.enable({ apis: ["setInterval", "setTimeout", "Date"], now: 1_000_000 });
  const { c } = client(() => 0);
  const first = FakeSocket.all[0];
  first.welcome(); // heartbeat_interval 30 s: dead after 65 s of silence
  t.mock.timers.tick(64_000);
  assert.equal(first.readyState, 1, "64 s: still trusted");
  t.mock.timers.tick(2_000);
  assert.equal(first.readyState, 3, "66 s: replaced (the heartbeat tick would come at 90 s)");
  assert.equal(FakeSocket.all.length, 2, "and reconnected at once");
  assert.ok(first.sent.filter((m) => m.type === "heartbeat").length >= 2);
  c.close();
  t.mock.timers.reset();
});
