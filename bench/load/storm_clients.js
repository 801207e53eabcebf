// Client side of the resume-storm benchmark (bench/storm.py drives it).
//
// The first stdin line is a JSON plan: {"clients": [{"url", "resume_url", "group"}...],
// "events": E, "concurrency": C, "resume_concurrency": R, "timeout_s": T}. Then commands,
// one a line, each answered with one JSON line on stdout:
//   connect         open every client (C at a time), wait for each `welcome`: "connected"
//   drop GROUP      close GROUP's clients (a clean close): "dropped"
//   lost GROUP      wait until GROUP's clients have seen their socket close (their
//                   process was killed): "lost"
//   resume GROUP    reconnect GROUP's clients at once (R at a time, 0 = all) to their
//                   resume_url with since=<last seq seen>, and wait until each has every
//                   marked event: "resumed", with each client's time from the command
//   report          every client's checks: "report"
//
// A marked event is an `announcement` with data.n in 0..E-1 (the benchmark appends
// them while the clients are away). Every client checks every frame that carries a seq:
// seq above the last one seen (else out of order or duplicate), prev_seq not above the
// last one seen (else an event of its view was missed: the protocol's gap rule), each
// n exactly once. A resume that fails (refused with a reconnect code, closed before
// it is complete) is retried with since=<last seq seen> after a short jittered backoff,
// as the hub's clients do; retries and close codes are counted.
'use strict';

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');
const WebSocket = require('ws');

const now = () => performance.now();
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

let plan = null;
const clients = [];

class Client {
  constructor(index, spec) {
    this.index = index;
    this.url = spec.url;
    this.resumeUrl = spec.resume_url || spec.url;
    this.group = spec.group || 'all';
    this.ws = null;
    this.last = 0; // last seq seen
    this.seen = new Uint8Array(plan.events);
    this.unique = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.gaps = 0;
    this.notRecovered = 0;
    this.welcomed = false;
    this.open = false;
    this.doneAt = null;
    this.retries = 0;
    this.closeCodes = {};
    this.errors = {};
    this.onWelcome = null;
    this.onClose = null;
    this.onComplete = null;
  }

  note(map, key) {
    map[key] = (map[key] || 0) + 1;
  }

  connect(url) {
    this.welcomed = false;
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: plan.timeout_s * 1000 });
    this.ws = ws;
    ws.on('open', () => {
      this.open = true;
    });
    ws.on('message', (data) => this.message(data));
    ws.on('error', (e) => this.note(this.errors, String(e.message).slice(0, 80)));
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.open = false;
      this.ws = null;
      this.note(this.closeCodes, code);
      const cb = this.onClose;
      if (cb) cb(code);
    });
  }

  message(data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch (e) {
      this.note(this.errors, 'bad frame');
      return;
    }
    if (!this.welcomed) {
      if (ev.type === 'welcome') {
        this.welcomed = true;
        const resume = ev.data.resume;
        if (resume && resume.since !== null && !resume.recovered) this.notRecovered++;
        if (this.last === 0) this.last = ev.data.head_seq; // live from the head
        const cb = this.onWelcome;
        if (cb) cb(null);
        return;
      }
      if (ev.type === 'error') {
        this.note(this.errors, `refused: ${ev.data && ev.data.code}`);
        return; // the close that follows decides
      }
    }
    if (typeof ev.seq !== 'number') return;
    if (ev.seq <= this.last) {
      this.outOfOrder++;
      return;
    }
    if (typeof ev.prev_seq === 'number' && ev.prev_seq > this.last) this.gaps++;
    this.last = ev.seq;
    if (ev.type !== 'announcement' || !ev.data || typeof ev.data.n !== 'number') return;
    const n = ev.data.n;
    if (n < 0 || n >= plan.events) return;
    if (this.seen[n]) {
      this.duplicates++;
      return;
    }
    this.seen[n] = 1;
    this.unique++;
    if (this.unique === plan.events && this.doneAt === null) {
      this.doneAt = now();
      const cb = this.onComplete;
      if (cb) cb();
    }
  }
}

// Run `start(client, settle)` for every client with at most `limit` in flight (0: all).
function bounded(list, limit, start) {
  return new Promise((resolve) => {
    if (!list.length) return resolve();
    let next = 0;
    let inFlight = 0;
    let done = 0;
    const cap = limit > 0 ? limit : list.length;
    const launch = () => {
      while (inFlight < cap && next < list.length) {
        const c = list[next++];
        inFlight++;
        let settled = false;
        start(c, () => {
          if (settled) return;
          settled = true;
          inFlight--;
          done++;
          if (done === list.length) resolve();
          else launch();
        });
      }
    };
    launch();
  });
}

async function connectAll() {
  const t0 = now();
  let failed = 0;
  await bounded(clients, plan.concurrency, (c, settle) => {
    const timer = setTimeout(() => {
      failed++;
      c.note(c.errors, 'welcome timeout');
      settle();
    }, plan.timeout_s * 1000);
    c.onWelcome = () => {
      clearTimeout(timer);
      c.onWelcome = null;
      c.onClose = null;
      settle();
    };
    c.onClose = (code) => {
      clearTimeout(timer);
      failed++;
      c.note(c.errors, `closed before welcome: ${code}`);
      c.onClose = null;
      settle();
    };
    c.connect(c.url);
  });
  emit({ event: 'connected', clients: clients.length, failed, setup_s: (now() - t0) / 1000 });
}

function group(name) {
  return clients.filter((c) => name === 'all' || c.group === name);
}

// Until every client of `mine` has seen its socket close (closing it first if `close`).
async function closed(mine, close) {
  await Promise.all(
    mine.map(
      (c) =>
        new Promise((resolve) => {
          if (!c.ws) return resolve();
          c.onClose = () => resolve();
          if (close) c.ws.close(1000);
        }),
    ),
  );
  for (const c of mine) c.onClose = null;
}

async function drop(name) {
  const mine = group(name);
  await closed(mine, true);
  emit({ event: 'dropped', clients: mine.length });
}

async function lost(name) {
  const mine = group(name);
  const t0 = now();
  await closed(mine, false);
  emit({ event: 'lost', clients: mine.length, after_s: (now() - t0) / 1000 });
}

async function resume(name) {
  const mine = group(name);
  const t0 = now();
  const deadline = t0 + plan.timeout_s * 1000;
  const completions = [];
  // Bounded concurrency limits handshakes in flight, not replays: a client's slot is
  // freed at its welcome (or when it gives up); completion is awaited after.
  await bounded(mine, plan.resume_concurrency, (c, settle) => {
    let backoff = 100;
    let finish;
    completions.push(new Promise((resolve) => (finish = resolve)));
    const attempt = () => {
      if (now() > deadline) {
        c.note(c.errors, 'resume timeout');
        c.onClose = null;
        settle();
        finish();
        return;
      }
      c.onComplete = () => {
        c.onComplete = null;
        c.onClose = null;
        settle();
        finish();
      };
      c.onWelcome = () => {
        c.onWelcome = null;
        settle();
      };
      c.onClose = () => {
        if (c.doneAt !== null) return;
        c.retries++;
        const delay = backoff * (0.5 + Math.random());
        backoff = Math.min(backoff * 2, 2000);
        setTimeout(attempt, delay);
      };
      const url = new URL(c.resumeUrl);
      url.searchParams.set('since', String(c.last));
      c.connect(url.toString());
    };
    attempt();
  });
  await Promise.all(completions);
  const times = mine.filter((c) => c.doneAt !== null).map((c) => (c.doneAt - t0) / 1000);
  emit({
    event: 'resumed',
    clients: mine.length,
    complete: times.length,
    times,
    retries: mine.reduce((k, c) => k + c.retries, 0),
  });
}

function report() {
  const sum = (f) => clients.reduce((k, c) => k + f(c), 0);
  const merge = (f) => {
    const out = {};
    for (const c of clients) for (const [k, v] of Object.entries(f(c))) out[k] = (out[k] || 0) + v;
    return out;
  };
  emit({
    event: 'report',
    clients: clients.length,
    incomplete: sum((c) => (c.unique < plan.events ? 1 : 0)),
    missing: sum((c) => plan.events - c.unique),
    duplicates: sum((c) => c.duplicates),
    out_of_order: sum((c) => c.outOfOrder),
    gaps: sum((c) => c.gaps),
    not_recovered: sum((c) => c.notRecovered),
    retries: sum((c) => c.retries),
    close_codes: merge((c) => c.closeCodes),
    errors: merge((c) => c.errors),
    cpu_ms: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
  });
}

const rl = readline.createInterface({ input: process.stdin });
const queue = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const [cmd, arg] = queue.shift().trim().split(/\s+/);
    if (cmd === 'connect') await connectAll();
    else if (cmd === 'drop') await drop(arg || 'all');
    else if (cmd === 'lost') await lost(arg || 'all');
    else if (cmd === 'resume') await resume(arg || 'all');
    else if (cmd === 'report') report();
    else if (cmd === 'quit') {
      for (const c of clients) if (c.ws) c.ws.terminate();
      setTimeout(() => process.exit(0), 200).unref();
    }
  }
  busy = false;
}
rl.on('line', (line) => {
  if (plan === null) {
    plan = JSON.parse(line);
    plan.clients.forEach((spec, i) => clients.push(new Client(i, spec)));
    emit({ event: 'plan', clients: clients.length });
    return;
  }
  queue.push(line);
  pump();
});
rl.on('close', () => process.exit(0));
