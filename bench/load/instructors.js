// Writer side of the ingest benchmark (bench/ingest.py drives it).
//
// Reads a JSON plan on the first stdin line: {"urls": [...one instructor URL per
// session...], "window": W, "seconds": S, "warmup_s": U}. Opens every connection, waits
// for each `welcome`, prints {"event":"ready"}; on "go" (stdin) every connection keeps W
// announcements un-acked at all times for U + S seconds, then stops sending and waits for
// the acks still owed (at most 10 s). Acks that arrive during the first U seconds are
// warm-up: counted, not timed. Prints {"event":"result", ...}: acks in the timed window,
// its length, ack latency percentiles, errors by code, refused ids, its own CPU share.
//
// With "rate": R in the plan the load is open-loop instead: R announcements a second in
// all, spread evenly over the connections by one ticker, whatever the acks do (W then only
// caps what one connection may have un-acked; a send it had to skip counts as `skipped`).
// That is the latency at a given rate, rather than the most a window lets through.
//
// Node and `ws` for the same reason as subscribers.js: one Python client could not send
// and parse 20,000 frames a second without becoming the bottleneck itself.
'use strict';

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');
const WebSocket = require('ws');

const now = () => performance.now();
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const BUCKET_MS = 0.05;
const BUCKETS = 200000; // 10 s
const hist = new Uint32Array(BUCKETS + 1);
const st = { acked: 0, timed: 0, errors: {}, refused: 0, sent: 0, closes: 0, skipped: 0 };
let plan = null;
let timedFrom = 0;
let timedTo = 0;
let stopAt = 0;
let cpuAtGo = null;
let wallAtGo = 0;
const writers = [];
const message = 'Breathe in for four, hold for four.';

function percentile(p) {
  const total = hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let want = Math.ceil(total * p);
  for (let i = 0; i <= BUCKETS; i++) {
    want -= hist[i];
    if (want <= 0) return i * BUCKET_MS;
  }
  return BUCKETS * BUCKET_MS;
}

function send(w) {
  const id = `${w.index}-${w.next++}`;
  const text = `{"type":"announcement","id":"${id}","data":{"message":"${message}","n":${w.next}}}`;
  w.sentAt.set(id, now());
  w.frames.set(id, text);
  w.ws.send(text);
  st.sent++;
}

function onMessage(w, raw) {
  const text = raw.toString();
  // Acks and errors are all we look at; everything else (our own events coming back
  // through the room) is skipped without a full parse.
  if (!text.startsWith('{"type":"ack"') && !text.startsWith('{"type":"error"')) return;
  const msg = JSON.parse(text);
  const id = msg.data && msg.data.id;
  if (msg.type === 'error') {
    const code = String(msg.data && msg.data.code);
    st.errors[code] = (st.errors[code] || 0) + 1;
    if (!w.sentAt.has(id)) return;
    if (code === 'rate_limited' || code === 'unavailable') {
      // Retryable: the same id again is idempotent on the hub.
      setTimeout(() => w.ws.readyState === 1 && w.ws.send(w.frames.get(id) || ''), 50);
      return;
    }
    st.refused++;
    w.sentAt.delete(id);
    w.frames.delete(id);
  } else {
    const sent = w.sentAt.get(id);
    if (sent === undefined) return;
    w.sentAt.delete(id);
    w.frames.delete(id);
    const t = now();
    st.acked++;
    if (t >= timedFrom && t <= timedTo) {
      st.timed++;
      hist[Math.min(BUCKETS, Math.floor((t - sent) / BUCKET_MS))]++;
    }
  }
  if (plan.rate) {
    if (now() >= stopAt && w.sentAt.size === 0) w.done = true;
  } else if (now() < stopAt) send(w);
  else if (w.sentAt.size === 0) w.done = true;
}

async function open(url, index) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const w = { ws, index, next: 0, sentAt: new Map(), frames: new Map(), done: false };
    const timer = setTimeout(() => reject(new Error('welcome timeout')), 20000);
    ws.once('message', (raw) => {
      clearTimeout(timer);
      if (!raw.toString().startsWith('{"type":"welcome"')) return reject(new Error(`no welcome: ${raw}`));
      ws.on('message', (r) => onMessage(w, r));
      resolve(w);
    });
    ws.on('error', (err) => reject(err));
    ws.on('close', () => { st.closes++; w.done = true; });
  });
}

async function setup() {
  for (let i = 0; i < plan.urls.length; i += 64) {
    const batch = plan.urls.slice(i, i + 64).map((u, k) => open(u, i + k));
    writers.push(...(await Promise.all(batch)));
  }
  emit({ event: 'ready', writers: writers.length });
}

function go() {
  cpuAtGo = process.cpuUsage();
  wallAtGo = now();
  timedFrom = wallAtGo + plan.warmup_s * 1000;
  timedTo = timedFrom + plan.seconds * 1000;
  stopAt = timedTo;
  if (plan.rate) {
    let due = 0;
    let next = 0;
    const ticker = setInterval(() => {
      const t = now();
      if (t >= stopAt) {
        clearInterval(ticker);
        for (const w of writers) if (w.sentAt.size === 0) w.done = true;
        return;
      }
      const owed = Math.floor(((t - wallAtGo) / 1000) * plan.rate) - due;
      for (let k = 0; k < owed; k++) {
        const w = writers[next];
        next = (next + 1) % writers.length;
        if (w.sentAt.size >= plan.window) st.skipped++;
        else send(w);
      }
      due += owed;
    }, 1);
  } else {
    for (const w of writers) for (let k = 0; k < plan.window; k++) send(w);
  }
  const check = setInterval(() => {
    const t = now();
    if ((t > stopAt && writers.every((w) => w.done || w.sentAt.size === 0)) || t > stopAt + 10000) {
      clearInterval(check);
      const cpu = process.cpuUsage(cpuAtGo);
      const owed = writers.reduce((a, w) => a + w.sentAt.size, 0);
      emit({
        event: 'result',
        acked: st.acked,
        timed_acks: st.timed,
        timed_seconds: plan.seconds,
        sent: st.sent,
        owed,
        p50_ms: percentile(0.5),
        p99_ms: percentile(0.99),
        max_ms: percentile(1.0),
        errors: st.errors,
        refused: st.refused,
        closes: st.closes,
        skipped: st.skipped,
        cpu_share: (cpu.user + cpu.system) / 1000 / (t - wallAtGo),
      });
      for (const w of writers) w.ws.terminate();
      process.exit(0);
    }
  }, 50);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!plan) {
    plan = JSON.parse(line);
    setup().catch((err) => { emit({ event: 'error', error: String(err) }); process.exit(1); });
  } else if (line.trim() === 'go') {
    go();
  }
});
rl.on('close', () => process.exit(0));
