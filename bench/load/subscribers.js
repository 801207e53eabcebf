// Subscriber side of the fan-out benchmark (one process, driven by bench/fanout.py).
//
// Opens --subscribers connections to one server, waits until every one of them is
// subscribed (the hub's `welcome`, the ws peer's `welcome`, the Socket.IO room-join
// ack), prints {"event":"ready"} and then counts the events each connection receives.
// The orchestrator publishes and talks to us on stdin:
//   "go"    it is about to publish the first event (starts the CPU accounting);
//   "done"  it has published everything: stop as soon as every connection has every
//           event, or once nothing has arrived for --grace-s seconds.
// The last stdout line is {"event":"result", ...}: deliveries, duplicates, missing
// events per connection, out-of-order frames, early closes, the wall-clock time of
// the first and last delivery (epoch ms, same clock as Python's time.time()) and
// this process's CPU use, so a saturated generator shows up in the report.
//
// Every event carries data.n (0..events-1, the publisher's index) and a seq that
// increases with publishing order; that is all we look at.
//
// Why Node and one process: it is the same client for all three servers, it costs
// less CPU per frame than an asyncio client (see the top of fanout.py for the
// measurements), and one process fits on the core the server under test leaves free;
// fanout.py prints its CPU share for every run.
'use strict';

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');
const WebSocket = require('ws');

function parseArgs(argv) {
  const a = {
    kind: 'ws', // ws | socketio
    url: '',
    subscribers: 1000,
    events: 200,
    eventType: 'announcement',
    room: 'bench',
    sioClient: 'raw', // raw | official (socket.io-client)
    connectConcurrency: 64,
    connectTimeoutS: 20,
    setupTimeoutS: 180,
    graceS: 15,
    maxSeconds: 600,
    heartbeatS: 0,
    deflate: false,
  };
  const num = new Set([
    'subscribers', 'events', 'connectConcurrency', 'connectTimeoutS', 'setupTimeoutS',
    'graceS', 'maxSeconds', 'heartbeatS',
  ]);
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in a)) throw new Error(`unknown argument ${argv[i]}`);
    if (typeof a[key] === 'boolean') a[key] = true;
    else a[key] = num.has(key) ? Number(argv[++i]) : argv[++i];
  }
  if (!a.url) throw new Error('--url is required');
  return a;
}

const args = parseArgs(process.argv);
const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms resolution
const emit = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

// ---- per-connection bookkeeping -------------------------------------------------

class Sub {
  constructor(index) {
    this.index = index;
    this.seen = new Uint8Array(args.events);
    this.unique = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.lastSeq = -Infinity;
    this.subscribed = false;
    this.closed = false;
    this.closeCode = null;
    this.close = () => {};
    this.send = () => {};
  }
}

const subs = [];
const stats = {
  deliveries: 0,
  frames: 0,
  bytes: 0,
  otherFrames: 0,
  reads: 0, // socket reads (chunks) while events flow; see frames_per_read
  firstReceive: null,
  lastReceive: null,
  complete: 0,
  errors: {},
};
let phase = 'setup'; // setup -> ready -> running -> finished

function noteError(msg) {
  const key = String(msg).slice(0, 120);
  stats.errors[key] = (stats.errors[key] || 0) + 1;
}

// One event for one connection: `ev` is the parsed event object.
function onEvent(sub, ev, size) {
  if (phase !== 'setup') {
    stats.frames++;
    stats.bytes += size;
  }
  if (!ev || ev.type !== args.eventType || !ev.data || typeof ev.data.n !== 'number') {
    stats.otherFrames++;
    return;
  }
  const t = now();
  if (stats.firstReceive === null) stats.firstReceive = t;
  stats.lastReceive = t;
  lastActivity = t;
  const n = ev.data.n;
  if (n < 0 || n >= args.events) {
    stats.otherFrames++;
    return;
  }
  if (typeof ev.seq === 'number') {
    if (ev.seq <= sub.lastSeq) sub.outOfOrder++;
    sub.lastSeq = ev.seq;
  }
  if (sub.seen[n]) {
    sub.duplicates++;
    return;
  }
  sub.seen[n] = 1;
  sub.unique++;
  stats.deliveries++;
  if (sub.unique === args.events) {
    stats.complete++;
    if (stats.complete === subs.length) finish('complete');
  }
}

function onClosed(sub, code) {
  if (sub.closed) return;
  sub.closed = true;
  sub.closeCode = code;
  if (phase === 'running' && stats.complete + closedIncomplete() >= subs.length) {
    finish('all connections closed or complete');
  }
}

function closedIncomplete() {
  let k = 0;
  for (const s of subs) if (s.closed && s.unique < args.events) k++;
  return k;
}

// ---- transports -------------------------------------------------------------

// Count the TCP reads behind the frames. About one frame per read means each frame
// was consumed as soon as it arrived (we keep up with the server); many frames per
// read mean they queued in the socket buffer waiting for us.
function countReads(ws) {
  ws.once('open', () => {
    if (ws._socket) ws._socket.on('data', () => {
      if (phase !== 'setup') stats.reads++;
    });
  });
}

// Plain WebSocket (the hub and the websockets peer): the first frame is `welcome`.
function connectWs(sub, onSubscribed) {
  const url = args.url.replaceAll('{i}', String(sub.index));
  const ws = new WebSocket(url, { perMessageDeflate: args.deflate, handshakeTimeout: args.connectTimeoutS * 1000 });
  sub.close = () => ws.terminate();
  sub.send = (s) => ws.readyState === WebSocket.OPEN && ws.send(s);
  countReads(ws);
  ws.on('message', (data, isBinary) => {
    let ev;
    try {
      ev = JSON.parse(isBinary ? data.toString('utf8') : data);
    } catch (e) {
      noteError(`bad frame: ${e.message}`);
      return;
    }
    if (!sub.subscribed) {
      if (ev && ev.type === 'welcome') {
        onSubscribed(null);
        return;
      }
      if (ev && ev.type === 'error') onSubscribed(new Error(`error before welcome: ${JSON.stringify(ev.data)}`));
    }
    onEvent(sub, ev, data.length);
  });
  ws.on('error', (e) => {
    if (!sub.subscribed) onSubscribed(e);
    else noteError(`socket error: ${e.message}`);
  });
  ws.on('close', (code) => {
    if (!sub.subscribed) onSubscribed(new Error(`closed before welcome: ${code}`));
    onClosed(sub, code);
  });
}

// Socket.IO with a minimal client speaking Engine.IO v4 / Socket.IO v5 over `ws`:
// the same WebSocket library and the same one JSON.parse per frame as for the other
// servers, so the client-side cost does not differ between servers (socket.io-client
// adds its own decoding and emitter layers; --sio-client official uses it instead).
function connectSioRaw(sub, onSubscribed) {
  const base = new URL(args.url);
  base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  base.pathname = '/socket.io/';
  base.search = '?EIO=4&transport=websocket';
  const ws = new WebSocket(base.toString(), { perMessageDeflate: args.deflate, handshakeTimeout: args.connectTimeoutS * 1000 });
  sub.close = () => ws.terminate();
  sub.send = () => {};
  countReads(ws);
  ws.on('message', (data) => {
    const s = data.toString('utf8');
    const t = s.charCodeAt(0);
    if (t === 50 /* '2' ping */) {
      ws.send('3');
    } else if (s.startsWith('42')) {
      let packet;
      try {
        packet = JSON.parse(s.slice(2));
      } catch (e) {
        noteError(`bad frame: ${e.message}`);
        return;
      }
      onEvent(sub, packet[0] === 'event' ? packet[1] : null, data.length);
    } else if (s.startsWith('430')) {
      onSubscribed(null); // ack of our join (ack id 0)
    } else if (s.startsWith('40')) {
      ws.send(`420${JSON.stringify(['join', args.room])}`);
    } else if (t === 48 /* '0' open */) {
      ws.send('40');
    } else if (s.startsWith('44')) {
      onSubscribed(new Error(`connect_error ${s.slice(2)}`));
    }
  });
  ws.on('error', (e) => {
    if (!sub.subscribed) onSubscribed(e);
    else noteError(`socket error: ${e.message}`);
  });
  ws.on('close', (code) => {
    if (!sub.subscribed) onSubscribed(new Error(`closed before join: ${code}`));
    onClosed(sub, code);
  });
}

function connectSioOfficial(sub, onSubscribed) {
  const { io } = require('socket.io-client');
  const socket = io(args.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: args.connectTimeoutS * 1000,
    perMessageDeflate: args.deflate ? { threshold: 0 } : false,
  });
  sub.close = () => socket.disconnect();
  sub.send = () => {};
  socket.on('connect', () => {
    socket.emit('join', args.room, () => onSubscribed(null));
  });
  socket.on('event', (ev) => onEvent(sub, ev, 0));
  socket.on('connect_error', (e) => onSubscribed(e));
  socket.on('disconnect', (reason) => {
    if (!sub.subscribed) onSubscribed(new Error(`disconnected before join: ${reason}`));
    onClosed(sub, reason);
  });
}

const connectOne =
  args.kind === 'ws' ? connectWs : args.sioClient === 'official' ? connectSioOfficial : connectSioRaw;

// ---- setup: open every connection with bounded concurrency -----------------------

function openAll() {
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    let done = 0;
    let failed = 0;
    const launch = () => {
      while (inFlight < args.connectConcurrency && next < args.subscribers) {
        const sub = new Sub(next++);
        subs.push(sub);
        inFlight++;
        let settled = false;
        const timer = setTimeout(() => settle(new Error('subscribe timeout')), args.connectTimeoutS * 1000);
        const settle = (err) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          inFlight--;
          done++;
          if (err) {
            failed++;
            noteError(`connect: ${err.message || err}`);
            sub.closed = true;
            sub.close();
          } else {
            sub.subscribed = true;
          }
          if (done === args.subscribers) resolve(failed);
          else launch();
        };
        try {
          connectOne(sub, settle);
        } catch (e) {
          settle(e);
        }
      }
    };
    launch();
  });
}

// ---- run -----------------------------------------------------------------------

let lastActivity = now();
let cpuAtGo = null;
let wallAtGo = null;
let doneAt = null;
let heartbeatTimer = null;

function finish(reason) {
  if (phase === 'finished') return;
  phase = 'finished';
  const wallEnd = now();
  const cpu = process.cpuUsage(cpuAtGo || undefined);
  if (heartbeatTimer) clearInterval(heartbeatTimer);
  let missingTotal = 0;
  let worstMissing = 0;
  let incomplete = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  const closeCodes = {};
  for (const s of subs) {
    const missing = args.events - s.unique;
    missingTotal += missing;
    worstMissing = Math.max(worstMissing, missing);
    if (missing > 0) incomplete++;
    duplicates += s.duplicates;
    outOfOrder += s.outOfOrder;
    if (s.closed && s.closeCode !== null) closeCodes[s.closeCode] = (closeCodes[s.closeCode] || 0) + 1;
  }
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const measuredWall = wallAtGo !== null && stats.lastReceive !== null ? stats.lastReceive - wallAtGo : null;
  emit({
    event: 'result',
    reason,
    subscribers: subs.length,
    events: args.events,
    deliveries: stats.deliveries,
    expected: subs.length * args.events,
    complete_connections: stats.complete,
    incomplete_connections: incomplete,
    missing_total: missingTotal,
    worst_missing: worstMissing,
    duplicates,
    out_of_order: outOfOrder,
    other_frames: stats.otherFrames,
    frame_bytes_avg: stats.frames && stats.bytes ? stats.bytes / stats.frames : null,
    frames_per_read: stats.reads ? stats.frames / stats.reads : null,
    first_receive_ms: stats.firstReceive,
    last_receive_ms: stats.lastReceive,
    go_ms: wallAtGo,
    done_ms: doneAt,
    // CPU this process used from "go" to the end, as a share of the delivery window
    // (1.0 = one core flat out: the generator would be the bottleneck).
    cpu_ms: cpuMs,
    cpu_share: measuredWall ? cpuMs / Math.max(1, wallEnd - wallAtGo) : null,
    close_codes: closeCodes,
    errors: stats.errors,
  });
  for (const s of subs) {
    try {
      s.close();
    } catch {}
  }
  setTimeout(() => process.exit(0), 300).unref();
}

async function main() {
  const hardStop = setTimeout(() => {
    if (phase === 'setup') {
      emit({ event: 'error', message: `setup did not finish within ${args.maxSeconds}s`, errors: stats.errors });
      process.exit(2);
    }
    finish('max-seconds reached');
  }, args.maxSeconds * 1000);
  hardStop.unref();

  const t0 = now();
  const setupDeadline = setTimeout(() => {
    emit({ event: 'error', message: `not all subscribed within ${args.setupTimeoutS}s`, errors: stats.errors });
    process.exit(2);
  }, args.setupTimeoutS * 1000);
  const failed = await openAll();
  clearTimeout(setupDeadline);
  if (args.heartbeatS > 0) {
    const hb = JSON.stringify({ type: 'heartbeat' });
    heartbeatTimer = setInterval(() => {
      for (const s of subs) if (!s.closed) s.send(hb);
    }, args.heartbeatS * 1000);
  }
  phase = 'ready';
  emit({ event: 'ready', connected: args.subscribers - failed, failed, setup_s: (now() - t0) / 1000, errors: stats.errors });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'go') {
      cpuAtGo = process.cpuUsage();
      wallAtGo = now();
      phase = 'running';
      if (stats.complete === subs.length) finish('complete');
    } else if (cmd === 'done') {
      doneAt = now();
      lastActivity = Math.max(lastActivity, doneAt);
      const idleCheck = setInterval(() => {
        if (phase === 'finished') clearInterval(idleCheck);
        else if (now() - lastActivity > args.graceS * 1000) finish(`idle for ${args.graceS}s after done`);
      }, 100);
    } else if (cmd === 'abort') {
      finish('aborted');
    }
  });
  rl.on('close', () => finish('stdin closed'));
}

main().catch((e) => {
  emit({ event: 'error', message: String(e && e.stack ? e.stack : e) });
  process.exit(2);
});
