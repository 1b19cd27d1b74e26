'use strict';
// Load generator for scripts/bench_broadcast: N socket.io-client connections (WebSocket only),
// then bursts of `metrics` events requested over HTTP, each ended by a serverStatus marker.
// Usage: node load.js URL CLIENTS SECONDS BURST [TOKEN]; prints one JSON line of results.
const { io } = require('socket.io-client');

const [url, nArg, secondsArg, burstArg, tokenArg] = process.argv.slice(2);
const N = Number(nArg);
const SECONDS = Number(secondsArg);
const BURST = Number(burstArg);
const TOKEN = tokenArg || 'bench';
const MAX_SAMPLES = 2_000_000;
const STEP_TIMEOUT_MS = 20_000;
const nowMs = () => performance.timeOrigin + performance.now();

const latencies = new Float64Array(MAX_SAMPLES);
let samples = 0;
let received = 0;
let markers = 0;
let expectSeq = -1;
let onAllMarkers = null;

function fail(message) {
  process.stdout.write(JSON.stringify({ error: message }) + '\n');
  process.exit(1);
}

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), STEP_TIMEOUT_MS)),
  ]);
}

async function connectAll() {
  const sockets = [];
  let connected = 0;
  await withTimeout(new Promise((resolve, reject) => {
    for (let i = 0; i < N; i++) {
      const s = io(url, { transports: ['websocket'], auth: { token: TOKEN }, forceNew: true, reconnection: false });
      s.on('connect', () => { if (++connected === N) resolve(); });
      s.on('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
      s.on('metrics', (m) => {
        received++;
        if (samples < MAX_SAMPLES) latencies[samples++] = nowMs() - m.sent;
      });
      s.on('serverStatus', (st) => {
        if (st.seq === expectSeq && ++markers === N && onAllMarkers) onAllMarkers();
      });
      sockets.push(s);
    }
  }), 'connect');
  return sockets;
}

async function runBurst(seq) {
  markers = 0;
  expectSeq = seq;
  const done = new Promise((resolve) => { onAllMarkers = resolve; });
  const res = await fetch(`${url}/bench/burst?count=${BURST}&seq=${seq}`);
  if (!res.ok) throw new Error(`burst: HTTP ${res.status}`);
  await withTimeout(done, 'burst markers');
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

(async () => {
  const sockets = await connectAll();
  const stats = await (await fetch(`${url}/bench/stats`)).json();
  await runBurst(0); // warm-up, not counted
  received = 0;
  samples = 0;
  const t0 = nowMs();
  let seq = 1;
  while (nowMs() - t0 < SECONDS * 1000) await runBurst(seq++);
  const elapsed = (nowMs() - t0) / 1000;
  const sorted = Array.from(latencies.subarray(0, samples)).sort((a, b) => a - b);
  const after = await (await fetch(`${url}/bench/stats`)).json();
  process.stdout.write(JSON.stringify({
    clients: N, bursts: seq - 1, burst: BURST, delivered: received, seconds: elapsed,
    rate: received / elapsed, p50_ms: percentile(sorted, 0.5), p99_ms: percentile(sorted, 0.99),
    rss_connected: stats.rss, server_after: after,
  }) + '\n');
  for (const s of sockets) s.close();
  process.exit(0);
})().catch((err) => fail(String(err && err.message ? err.message : err)));
