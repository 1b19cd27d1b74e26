'use strict';
// Test peer: one socket.io-client connection that prints what happens as JSON lines on stdout:
//   {"event":"connect"} | {"event":"connect_error","message":...} | {"event":NAME,"data":...}
// Usage: node client.js URL TOKEN [TRANSPORTS]   (TRANSPORTS e.g. "polling,websocket")
// It exits when its stdin closes.
const { io } = require('socket.io-client');

const [url, token, transports] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const options = { auth: { token }, reconnection: false, forceNew: true };
if (transports) options.transports = transports.split(',');

const socket = io(url, options);
socket.on('connect', () => print({ event: 'connect', transport: socket.io.engine.transport.name }));
socket.on('connect_error', (err) => print({ event: 'connect_error', message: err.message }));
socket.on('disconnect', (reason) => print({ event: 'disconnect', reason }));
socket.onAny((event, data) => print({ event, data }));
process.stdin.on('end', () => { socket.close(); process.exit(0); });
process.stdin.resume();
