// Subscriber side of the cluster benchmark (bench/cluster.py drives it).
//
// Reads a JSON plan on the first stdin line: {"urls": [...one WebSocket URL per
// subscriber...], "warmup": W, "total": N}. Opens every connection (bounded concurrency),
// waits for each `welcome`, prints {"event":"ready"}; then for every `announcement`
// carrying data.n and data.t (the publisher's wall clock in epoch ms when it sent the
// event) records receive time minus data.t into a histogram (0.05 ms buckets up to 10 s).
// Events with n < W are warm-up: delivered and checked, not timed.
// On "done" (stdin) it waits until every connection has every event or nothing has
// arrived for --grace-s, then prints {"event":"result", ...}: latency percentiles,
// deliveries, missing, duplicates, out-of-order seqs, closes, its own CPU share.
//
// Same reasoning as bench/load/subscribers.js: one Node process with `ws` parses frames
// several times faster than a Python client, so subscribers are not the bottleneck.
'use strict';

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');
const WebSocket = require('ws');

const BUCKET_MS = 0.05;
const BUCKETS = 200000; // 10 s
const now = () => performance.timeOrigin + performance.now();
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const graceS = Number(process.argv[process.argv.indexOf('--grace-s') + 1] || 10);
const concurrency = 64;

let plan = null;
const subs = [];
const hist = new Uint32Array(BUCKETS + 1);
// Per group (the benchmark passes "local" / "remote": same process as the publisher or
// reached through Redis), a second histogram each, to see what the Redis hop costs.
const groups = {};
const st = { timed: 0, deliveries: 0, dup: 0, ooo: 0, first: null, last: null, maxMs: 0, complete: 0, errors: {} };
let lastActivity = now();
let cpuAtGo = null;
let wallAtGo = null;
let finished = false;

function noteError(msg) {
  const key = String(msg).slice(0, 120);
  st.errors[key] = (st.errors[key] || 0) + 1;
}

function onMessage(sub, raw) {
  const t = now();
  let ev;
  try {
    ev = JSON.parse(raw);
  } catch (e) {
    noteError(`bad frame: ${e.message}`);
    return;
  }
  if (!sub.ready) {
    if (ev.type === 'welcome') sub.onReady(null);
    else if (ev.type === 'error') sub.onReady(new Error(JSON.stringify(ev.data)));
    return;
  }
  if (ev.type !== 'announcement' || !ev.data || typeof ev.data.n !== 'number') return;
  lastActivity = t;
  if (ev.seq <= sub.lastSeq) sub.ooo++;
  sub.lastSeq = ev.seq;
  const n = ev.data.n;
  if (sub.seen.has(n)) {
    st.dup++;
    return;
  }
  sub.seen.add(n);
  st.deliveries++;
  if (st.first === null) st.first = t;
  st.last = t;
  if (n >= plan.warmup) {
    const ms = t - ev.data.t;
    st.timed++;
    if (ms > st.maxMs) st.maxMs = ms;
    const bucket = Math.min(BUCKETS, Math.max(0, Math.floor(ms / BUCKET_MS)));
    hist[bucket]++;
    const g = groups[sub.group];
    g.hist[bucket]++;
    g.timed++;
  }
  if (sub.seen.size === sub.expected) {
    st.complete++;
    if (st.complete === subs.length) finish('complete');
  }
}

function open(index, url, expected, group) {
  return new Promise((resolve) => {
    const sub = { index, url, expected, group, seen: new Set(), lastSeq: -1, ooo: 0, ready: false, closed: null };
    if (!groups[group]) groups[group] = { hist: new Uint32Array(BUCKETS + 1), timed: 0 };
    subs.push(sub);
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 20000 });
    sub.ws = ws;
    const timer = setTimeout(() => sub.onReady(new Error('welcome timeout')), 30000);
    sub.onReady = (err) => {
      if (sub.ready || sub.failed) return;
      clearTimeout(timer);
      if (err) {
        sub.failed = true;
        noteError(`connect: ${err.message}`);
        ws.terminate();
      } else sub.ready = true;
      resolve();
    };
    ws.on('message', (data) => onMessage(sub, data));
    ws.on('error', (e) => (sub.ready ? noteError(`socket: ${e.message}`) : sub.onReady(e)));
    ws.on('close', (code) => {
      sub.closed = code;
      if (!sub.ready) sub.onReady(new Error(`closed ${code}`));
    });
  });
}

async function openAll() {
  let next = 0;
  const worker = async () => {
    while (next < plan.urls.length) {
      const i = next++;
      const [url, expected, group] = plan.urls[i];
      await open(i, url, expected, group || 'all');
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function percentile(p, h = hist, timed = st.timed) {
  const target = Math.ceil(timed * p);
  let seen = 0;
  for (let i = 0; i <= BUCKETS; i++) {
    seen += h[i];
    if (seen >= target && seen > 0) return (i + 1) * BUCKET_MS;
  }
  return null;
}

function finish(reason) {
  if (finished) return;
  finished = true;
  const cpu = process.cpuUsage(cpuAtGo || undefined);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  let missing = 0;
  let incomplete = 0;
  let ooo = 0;
  const closes = {};
  for (const s of subs) {
    const m = s.expected - s.seen.size;
    missing += m;
    if (m > 0) incomplete++;
    ooo += s.ooo;
    if (s.closed !== null) closes[s.closed] = (closes[s.closed] || 0) + 1;
  }
  emit({
    event: 'result',
    reason,
    subscribers: subs.length,
    failed: subs.filter((s) => s.failed).length,
    deliveries: st.deliveries,
    timed: st.timed,
    missing,
    incomplete_connections: incomplete,
    duplicates: st.dup,
    out_of_order: ooo,
    p50_ms: percentile(0.5),
    p90_ms: percentile(0.9),
    p99_ms: percentile(0.99),
    p999_ms: percentile(0.999),
    max_ms: st.maxMs,
    groups: Object.fromEntries(
      Object.entries(groups).map(([name, g]) => [
        name,
        { timed: g.timed, p50_ms: percentile(0.5, g.hist, g.timed), p99_ms: percentile(0.99, g.hist, g.timed) },
      ]),
    ),
    first_ms: st.first,
    last_ms: st.last,
    go_ms: wallAtGo,
    cpu_share: wallAtGo ? cpuMs / Math.max(1, now() - wallAtGo) : null,
    closes,
    errors: st.errors,
  });
  for (const s of subs) s.ws.terminate();
  setTimeout(() => process.exit(0), 200).unref();
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const cmd = line.trim();
  if (plan === null) {
    plan = JSON.parse(cmd);
    const t0 = now();
    await openAll();
    emit({ event: 'ready', connected: subs.filter((s) => s.ready).length, setup_s: (now() - t0) / 1000, errors: st.errors });
  } else if (cmd === 'go') {
    cpuAtGo = process.cpuUsage();
    wallAtGo = now();
  } else if (cmd === 'done') {
    lastActivity = Math.max(lastActivity, now());
    setInterval(() => {
      if (now() - lastActivity > graceS * 1000) finish(`idle ${graceS}s after done`);
    }, 100);
  } else if (cmd === 'abort') finish('aborted');
});
rl.on('close', () => finish('stdin closed'));
