// Drives the official Node ARI client (npm ari-client) against a simulated
// Asterisk: connect (swagger docs from /ari/api-docs), wait for a call's
// StasisStart, answer, play sound:hello-world, hang up when the playback
// finishes, and report every step as one JSON line on stdout.
//   node spec/support/node_ari_client.js URL USER PASSWORD APP
// NODE_PATH must reach the installed ari-client (build/node/node_modules).
'use strict';

const ari = require('ari-client');

const [url, user, pass, appName] = process.argv.slice(2);
const report = (what, extra) => {
  process.stdout.write(JSON.stringify(Object.assign({ step: what }, extra || {})) + '\n');
};
const fail = (what, err) => {
  report('error', { where: what, message: String(err && err.message || err) });
  process.exit(1);
};
setTimeout(() => fail('timeout', 'no hang-up within 20 s'), 20000).unref();

ari.connect(url, user, pass)
  .then((client) => {
    report('connected', { resources: Object.keys(client).filter((k) => /^[a-z][A-Za-z]+$/.test(k) && typeof client[k] === 'object').sort() });
    client.on('StasisStart', (event, channel) => {
      report('StasisStart', { channel: channel.id, state: channel.state, caller: channel.caller.number, args: event.args });
      channel.answer()
        .then(() => {
          report('answered');
          const playback = client.Playback();
          playback.once('PlaybackFinished', (ev, pb) => {
            report('PlaybackFinished', { playback: pb.id, state: pb.state });
            channel.hangup().then(() => report('hungup')).catch((e) => fail('hangup', e));
          });
          return channel.play({ media: 'sound:hello-world' }, playback)
            .then((pb) => report('playing', { playback: pb.id, media: pb.media_uri, target: pb.target_uri }));
        })
        .catch((e) => fail('answer/play', e));
    });
    client.on('StasisEnd', (event, channel) => {
      report('StasisEnd', { channel: channel.id });
      // a REST error must come back as a rejected promise with the status
      client.channels.get({ channelId: channel.id })
        .then(() => fail('get after hang-up', 'expected 404'))
        .catch((e) => {
          report('get after hang-up', { message: String(e.message) });
          client.stop();
          process.exit(0);
        });
    });
    return client.start(appName).then(() => report('started'));
  })
  .catch((e) => fail('connect', e));
