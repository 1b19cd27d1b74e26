'use strict';
// One load-generator shard for scripts/bench_broadcast: CLIENTS socket.io-client connections
// (WebSocket only). The orchestrator runs several shards, triggers the bursts itself and talks to
// each shard over stdin/stdout, one JSON object per line:
//   out {"ready":true,"clients":N}        all N connected
//   out {"marker":S}                      all N clients got the serverStatus end marker with seq S;
//                                         after seq 0 (the warm-up) the counters are reset, so the
//                                         measured window starts clean
//   in  "report"  -> out {"report":{...}} deliveries and a latency histogram since the reset
//   in  EOF       -> close the sockets and exit
//   out {"error":MESSAGE}                 then exit 1
// Usage: node load.js URL CLIENTS [TOKEN]
const { io } = require('socket.io-client');

const [url, nArg, tokenArg] = process.argv.slice(2);
const N = Number(nArg);
const TOKEN = tokenArg || 'bench';
const CONNECT_TIMEOUT_MS = 30_000;
// Latency histogram with log-spaced buckets 0.5 % wide, so shards can be merged exactly and
// percentiles are within 0.5 %; recording a sample is one Math.log, not an array push.
const BUCKET_GROWTH = 1.005;
const BUCKET_OFFSET = 1400; // bucket 0 is ~0.001 ms
const BUCKETS = 4096; // up to ~ 2e5 ms
const INV_LOG_GROWTH = 1 / Math.log(BUCKET_GROWTH);
const nowMs = () => performance.timeOrigin + performance.now();
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let histogram = new Float64Array(BUCKETS);
let received = 0;
const markers = new Map(); // seq -> clients that got that marker

function fail(message) {
  print({ error: message });
  process.exit(1);
}

function record(latencyMs) {
  received++;
  // Sub-microsecond and negative values (clock read in two processes) land in bucket 0.
  let b = Math.floor(Math.log(latencyMs > 0.001 ? latencyMs : 0.001) * INV_LOG_GROWTH) + BUCKET_OFFSET;
  if (b < 0) b = 0;
  else if (b >= BUCKETS) b = BUCKETS - 1;
  histogram[b]++;
}

function onMarker(seq) {
  const got = (markers.get(seq) || 0) + 1;
  if (got < N) {
    markers.set(seq, got);
    return;
  }
  markers.delete(seq);
  if (seq === 0) {
    received = 0;
    histogram = new Float64Array(BUCKETS);
  }
  print({ marker: seq });
}

function report() {
  const buckets = [];
  for (let b = 0; b < BUCKETS; b++) if (histogram[b]) buckets.push([b - BUCKET_OFFSET, histogram[b]]);
  print({ report: { clients: N, delivered: received, growth: BUCKET_GROWTH, buckets } });
}

const sockets = [];
let connected = 0;
const timer = setTimeout(() => fail(`timeout: ${connected}/${N} connected`), CONNECT_TIMEOUT_MS);
for (let i = 0; i < N; i++) {
  const s = io(url, { transports: ['websocket'], auth: { token: TOKEN }, forceNew: true, reconnection: false });
  s.on('connect', () => {
    if (++connected === N) {
      clearTimeout(timer);
      print({ ready: true, clients: N });
    }
  });
  s.on('connect_error', (err) => fail(`connect_error: ${err.message}`));
  s.on('metrics', (m) => record(nowMs() - m.sent));
  s.on('serverStatus', (st) => onMarker(st.seq));
  sockets.push(s);
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (line === 'report') report();
  }
});
process.stdin.on('end', () => {
  for (const s of sockets) s.close();
  process.exit(0);
});
