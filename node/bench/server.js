'use strict';
// Reference server for scripts/bench_broadcast: socket.io 4 with its default options, pushing
// the same `metrics` event as Citadel's bench server. Prints {"port": N} once listening.
//   GET /bench/burst?count=B&seq=S  emit B metrics events (yielding between emits), then a
//                                   serverStatus end marker with seq S; answers once all are out
//   GET /bench/stats                {"rss": bytes, "clients": n}
const http = require('http');
const { Server } = require('socket.io');

const TOKEN = process.env.BENCH_TOKEN || 'bench';
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));
const nowMs = () => performance.timeOrigin + performance.now();

async function burst(io, count, seq) {
  for (let i = 0; i < count; i++) {
    io.emit('metrics', {
      serverId: 'bench', cpu: 12.5, ram: 33.1, players: 42, fps: 59.9,
      timestamp: new Date().toISOString(), ramBytes: 2147483648, uptime: 3600, sent: nowMs(),
    });
    await yieldToLoop();
  }
  io.emit('serverStatus', { serverId: 'bench', status: 'running', seq });
}

const httpServer = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/bench/burst') {
    await burst(io, Number(url.searchParams.get('count')), Number(url.searchParams.get('seq')));
    res.end('ok');
  } else if (url.pathname === '/bench/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ rss: process.memoryUsage().rss, clients: io.engine.clientsCount }));
  } else {
    res.statusCode = 404;
    res.end();
  }
});
const io = new Server(httpServer);
io.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === TOKEN) next();
  else next(new Error('invalid token'));
});
httpServer.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + '\n');
});
process.stdin.on('end', () => process.exit(0)); // the orchestrator closing stdin stops us
process.stdin.resume();
