// bench/node/ariclient.js: the official Node ARI client (npm ari-client),
// written as its documentation shows.
//   node ariclient.js flow URL CALLS       answer -> play -> PlaybackFinished -> 1 digit -> hang up
//   node ariclient.js firehose URL EVENTS  events counted in a client.on('*') handler
// against bench/simd.lua / bench/firehose.lua (both serve the swagger
// documents that ari-client loads on connect).
'use strict';
const ari = require('ari-client');
const { cpuSeconds, now, rssKb, flowLine, dispatchLine } = require('./common');

const [mode, url, totalArg] = process.argv.slice(2);
const total = Number(totalArg || 100);

ari.connect(url, 'asterisk', 'asterisk').then((client) => {
  if (mode === 'firehose') {
    let count = 0, t0, cpu0;
    client.on('*', (ev) => {
      if (count === 0) { t0 = now(); cpu0 = cpuSeconds(); }
      count++;
      if (count === total) process.stdout.write(dispatchLine(count, t0, cpu0) + '\n', () => process.exit(0));
    });
    client.start('fire');
    return;
  }
  const rss0 = rssKb();
  let done = 0, failed = 0, t0, cpu0;
  const lat = [];
  client.on('StasisStart', (event, channel) => {
    if (t0 === undefined) { t0 = now(); cpu0 = cpuSeconds(); }
    const start = now();
    let played = false, digit = null, ended = false;
    function end(err) {
      if (ended) return;
      ended = true;
      channel.removeAllListeners('ChannelDtmfReceived');
      if (hangingUp) channel.removeAllListeners('StasisEnd');
      if (err) { failed++; if (failed <= 3) console.error('call failed:', err.message); }
      lat.push(now() - start);
      done++;
      if (done === total) process.stdout.write(flowLine(done, failed, t0, cpu0, lat, rss0) + '\n', () => process.exit(0));
    }
    let hangingUp = false;
    function hangup() { hangingUp = true; channel.hangup().then(() => end(), end); }
    // gone before our hang-up: counted as failed, never waited for
    channel.once('StasisEnd', () => { if (!hangingUp) end(new Error('the far end hung up')); });
    channel.on('ChannelDtmfReceived', (ev) => {
      if (digit !== null) return;
      digit = ev.digit;
      if (played) hangup();
    });
    channel.answer().then(() => {
      const playback = client.Playback();
      playback.once('PlaybackFinished', () => {
        played = true;
        if (digit !== null) hangup();
      });
      return channel.play({ media: 'sound:beep' }, playback);
    }).catch(end);
  });
  client.start('bench');
}).catch((err) => { console.error('connect failed:', err.message || err); process.exit(1); });
