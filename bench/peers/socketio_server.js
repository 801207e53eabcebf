// Socket.IO peer for the fan-out benchmark: the idiomatic Socket.IO way to do what
// the hub does. Subscribers emit "join" and get an ack once they are in the room;
// the publisher emits "publish" with an event object and the server re-emits it to
// the room with io.to(room).emit(), which encodes the packet once for all sockets.
//
// Usage: node peers/socketio_server.js --port 0 [--host 127.0.0.1] [--deflate]
// Prints one JSON line {"listening": PORT} on stdout when ready; exits on SIGTERM,
// SIGINT, when stdin closes (the orchestrator died) or after --max-seconds.
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, deflate: false, maxSeconds: 3600 };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--host') args.host = argv[++i];
    else if (a === '--port') args.port = Number(argv[++i]);
    else if (a === '--deflate') args.deflate = true;
    else if (a === '--max-seconds') args.maxSeconds = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

const args = parseArgs(process.argv);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  // WebSocket only: long-polling would measure something else entirely.
  transports: ['websocket'],
  // Same choice as the load generator makes for everyone (see bench/README.md).
  perMessageDeflate: args.deflate ? { threshold: 0 } : false,
  // 1000 subscribers must not be dropped by ping timeouts while the box is saturated.
  pingInterval: 25000,
  pingTimeout: 60000,
  maxHttpBufferSize: 1e6,
});

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    if (typeof ack === 'function') ack({ ok: true, room: String(room) });
  });
  socket.on('publish', (room, event) => {
    io.to(String(room)).emit('event', event);
  });
});

httpServer.listen(args.port, args.host, () => {
  process.stdout.write(`${JSON.stringify({ listening: httpServer.address().port })}\n`);
});

function shutdown() {
  io.close();
  httpServer.close();
  // Do not wait for lingering sockets: the orchestrator has what it needs.
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();
setTimeout(shutdown, args.maxSeconds * 1000).unref();
