// bench/node/handwritten.js: a hand-written Node ARI client (the `ws`
// package for events, http with a keep-alive agent for REST), the baseline
// a careful JavaScript developer would write without a framework.
//   node handwritten.js flow URL CALLS       answer -> play -> PlaybackFinished -> 1 digit -> hang up
//   node handwritten.js firehose URL EVENTS  JSON.parse + dispatch to a handler per event
// against bench/simd.lua / bench/firehose.lua (user asterisk, password asterisk).
'use strict';
const http = require('http');
const WebSocket = require('ws');
const { EventEmitter } = require('events');
const { cpuSeconds, now, rssKb, flowLine, dispatchLine } = require('./common');

const [mode, url, totalArg] = process.argv.slice(2);
const total = Number(totalArg || 100);
const u = new URL(url);
const AUTH = 'asterisk:asterisk';
const wsUrl = `ws://${u.host}/ari/events?app=bench&api_key=${AUTH}`;

if (mode === 'firehose') {
  const bus = new EventEmitter();
  let count = 0, t0, cpu0;
  bus.on('event', (ev) => {
    if (count === 0) { t0 = now(); cpu0 = cpuSeconds(); }
    count++;
    if (count === total) {
      process.stdout.write(dispatchLine(count, t0, cpu0) + '\n', () => process.exit(0));
    }
    return ev;
  });
  const ws = new WebSocket(wsUrl.replace('app=bench', 'app=fire'));
  ws.on('message', (data) => bus.emit('event', JSON.parse(data)));
  ws.on('error', (e) => { console.error('ws error', e.message); process.exit(1); });
} else {
  // same connection limit per host as ari-lua's libcurl pool
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const rss0 = rssKb();
  function rest(method, path, cb) {
    const req = http.request({ agent, host: u.hostname, port: u.port, method, path: '/ari' + path, auth: AUTH },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const body = chunks.length ? Buffer.concat(chunks).toString() : '';
          if (res.statusCode >= 300) return cb(new Error(`${method} ${path}: ${res.statusCode} ${body}`));
          cb(null, body ? JSON.parse(body) : null);
        });
      });
    req.on('error', cb);
    req.end();
  }
  const calls = new Map();     // channel id -> call
  const playbacks = new Map(); // playback id -> call
  let done = 0, failed = 0, t0, cpu0, seq = 0;
  const lat = [];
  function end(call, err) {
    if (call.ended) return;
    call.ended = true;
    calls.delete(call.id);
    if (err) { failed++; if (failed <= 3) console.error('call failed:', err.message); }
    lat.push(now() - call.t0);
    done++;
    if (done === total) process.stdout.write(flowLine(done, failed, t0, cpu0, lat, rss0) + '\n', () => process.exit(0));
  }
  function hangup(call) {
    call.hangingUp = true;
    rest('DELETE', `/channels/${call.id}`, (err) => end(call, err));
  }
  const ws = new WebSocket(wsUrl);
  ws.on('error', (e) => { console.error('ws error', e.message); process.exit(1); });
  ws.on('message', (data) => {
    const ev = JSON.parse(data);
    switch (ev.type) {
      case 'StasisStart': {
        if (t0 === undefined) { t0 = now(); cpu0 = cpuSeconds(); }
        const call = { id: ev.channel.id, t0: now(), played: false, digit: null, ended: false };
        calls.set(call.id, call);
        rest('POST', `/channels/${call.id}/answer`, (err) => {
          if (err) return end(call, err);
          const pb = `pb-${++seq}`;
          playbacks.set(pb, call);
          rest('POST', `/channels/${call.id}/play?media=sound:beep&playbackId=${pb}`, (err2) => {
            if (err2) { playbacks.delete(pb); end(call, err2); }
          });
        });
        break;
      }
      case 'PlaybackFinished': {
        const call = playbacks.get(ev.playback.id);
        if (!call) break;
        playbacks.delete(ev.playback.id);
        call.played = true;
        if (call.digit !== null) hangup(call);
        break;
      }
      case 'ChannelDtmfReceived': {
        const call = calls.get(ev.channel.id);
        if (!call || call.digit !== null) break;
        call.digit = ev.digit;
        if (call.played) hangup(call);
        break;
      }
      case 'StasisEnd': { // gone before our hang-up: counted as failed, never waited for
        const call = calls.get(ev.channel.id);
        if (call && !call.hangingUp) end(call, new Error('the far end hung up'));
        break;
      }
      default: break;
    }
  });
}
