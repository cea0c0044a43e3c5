#!/usr/bin/env node
// driver.js runs one named scenario of the official AMPS JavaScript client
// (npm "amps", pinned in package.json) against a broker and reports what
// happened as JSON lines on stdout. The Go tests in this folder start it.
//
// Usage:
//   node driver.js <scenario> [--uri URI] [--topic T] [--count N]
//                  [--echo-topic T] [--hold SECONDS] [--size BYTES]
//                  [--denied-topic T] [--peer-uri URI] [--timeout SECONDS]
//   URI defaults to $AMPS_URI, e.g. ws://127.0.0.1:9007/amps/json; it may
//   carry credentials (ws://user:password@host:port/amps/json).
//
// Output: one JSON object per line. Every line has "event". The last line is
// {"event":"result","scenario":...,"ok":true|false,...}. Exit status: 0 when
// ok, 1 on a failed check, 2 on a usage error, 3 when the hard timeout fired
// (the process can never outlive --timeout, default 60 s).
//
// Notes on the client (amps 5.3.4-0.378635.60b2fcc), read from its amps.d.ts
// and amps.js:
// * new Client(name); connect(uri) opens the WebSocket, sends the "text" or
//   "binary" selector frame and then logon; the promise resolves on the
//   processed logon ack and rejects with {commandId, message} on a failed one.
// * heartbeat(interval[, timeout]) must be called before connect; it sends
//   {"c":"heartbeat","a":"received","o":"start,N"} after logon, beats when a
//   server heartbeat arrives more than N s after its last beat, and reports
//   "4000 Heartbeat absence" through the error handler after 2N s of silence.
// * subscribe(handler, topic, filter?) resolves with the sub id (= cid,
//   "autoN") on a processed success ack and rejects with Error(reason) on a
//   failure ack. unsubscribe(subId) and flush() wait for their processed ack.
// * publish(topic, data) sends and returns nothing; failures only reach
//   failedWriteHandler, and only for persisted acks: with a publish store
//   (publishStore(new MemoryPublishStore())) publish() asks for a persisted
//   ack and a failed one ("not entitled", "duplicate" or status failure)
//   calls failedWriteHandler(message, reason). When the ack carries the
//   publish's "s" the client hands back the stored message; without "s" it
//   hands over the ack itself. execute(new Command('publish')...ackType(
//   'processed'), handler) instead delivers the processed ack (status and
//   reason) to handler; its promise resolves at once with the cid.
// * User and password in the URI become the logon's user_id and pw (and,
//   under Node only, an Authorization: Basic header on the upgrade).
//   A failed logon ack makes connect() reject with {commandId, message}
//   where message is the raw ack object (status, reason), not an Error. The
//   client keeps the socket open after that; when the server closes it the
//   connection state listeners see Disconnected (0) and, in this classic
//   mode (no server chooser, no delay strategy), it does not reconnect.
// * disconnect() closes the socket with 1000 "Disconnect from the client" and
//   resolves at once; no AMPS logoff is sent. A Client may connect again.
// * errorHandler(fn) gets connection errors and {name:'997'} for frames the
//   client could not process; lastChanceMessageHandler(fn) gets deliveries
//   whose sids name no live subscription; transportFilter(fn) sees every raw
//   frame (fn(data, outgoing)); incoming frames are MessageEvents (.data).
// * Under Node the client uses the "websocket" package's W3CWebSocket with
//   only {maxReceivedFrameSize: 1 TiB, assembleFragments: true}: there is no
//   way to pass tlsOptions, so wss with a self-signed certificate needs
//   NODE_EXTRA_CA_CERTS=<cert.pem> (what the Go tests do) or
//   NODE_TLS_REJECT_UNAUTHORIZED=0. Outbound frames above 16 KiB are
//   fragmented by that library; inbound fragmented messages are capped at
//   8 MiB (its default maxReceivedMessageSize).
// * Browser: amps.js itself is a UMD bundle (webpackUniversalModuleDefinition)
//   that sets window.amps when loaded by a <script> tag and then uses the
//   browser's WebSocket; amps.min.js is the minified equivalent.
'use strict';

const { Client, Command, MemoryPublishStore } = require('amps');

// Defaults for command line options.
const DEFAULT_TIMEOUT_SECONDS = 60; // hard limit on the whole run
const DEFAULT_COUNT = 10; // messages per scenario unless --count
const DEFAULT_LARGE_SIZE = 1 << 20; // bytes of the "large" message body
const DEFAULT_HOLD_SECONDS = 5; // idle time of the "heartbeat" scenario
const DEFAULT_TOPIC = 'interop';

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 3;

// emit writes one JSON line to stdout.
function emit(event, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + '\n');
}

let finished = false;

// startedAt is when the driver started; event times (t_ms) count from it.
const startedAt = Date.now();

// finish prints the result line and exits once stdout is drained.
function finish(scenario, ok, fields, code) {
  if (finished) return;
  finished = true;
  emit('result', Object.assign({ scenario, ok }, fields));
  const status = code !== undefined ? code : (ok ? EXIT_OK : EXIT_FAILED);
  process.stdout.write('', () => process.exit(status));
}

function parseArgs(argv) {
  const opts = {
    scenario: argv[0],
    uri: process.env.AMPS_URI || '',
    topic: DEFAULT_TOPIC,
    count: DEFAULT_COUNT,
    echoTopic: '',
    deniedTopic: '',
    peerUri: '',
    hold: DEFAULT_HOLD_SECONDS,
    size: DEFAULT_LARGE_SIZE,
    timeout: DEFAULT_TIMEOUT_SECONDS,
  };
  const numeric = { '--count': 'count', '--hold': 'hold', '--size': 'size', '--timeout': 'timeout' };
  const text = {
    '--uri': 'uri', '--topic': 'topic', '--echo-topic': 'echoTopic',
    '--denied-topic': 'deniedTopic', '--peer-uri': 'peerUri',
  };
  for (let i = 1; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`flag ${flag} needs a value`);
    if (numeric[flag]) {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`flag ${flag}: ${JSON.stringify(value)} is not a non-negative number`);
      opts[numeric[flag]] = n;
    } else if (text[flag]) {
      opts[text[flag]] = value;
    } else {
      throw new Error(`unknown flag ${JSON.stringify(flag)}`);
    }
  }
  if (!opts.scenario) throw new Error('missing scenario name');
  if (!opts.uri) throw new Error('missing --uri (or AMPS_URI)');
  return opts;
}

// errors collects every error reported by a client's error handler. No
// scenario expects one (failure acks reject promises instead), so the first
// error ends the run at once through clientFailed rather than leaving the
// scenario waiting for something the closed connection will never bring.
const errors = [];
let failClient;
const clientFailed = new Promise((_, reject) => { failClient = reject; });

// diagnostics holds functions whose results are added to a failed result
// line (e.g. the heartbeat timeline).
const diagnostics = {};

// newClient returns a client whose errors are recorded under its name.
function newClient(name) {
  const client = new Client(name);
  client.errorHandler((err) => {
    const e = { client: name, name: err && err.name, message: err && (err.message || String(err)), t_ms: Date.now() - startedAt };
    errors.push(e);
    emit('client_error', e);
    failClient(new Error(`client ${name} reported error ${e.name}: ${e.message}`));
  });
  return client;
}

async function connect(client, uri) {
  try {
    await client.connect(uri);
  } catch (err) {
    throw new Error(`connect ${redact(uri)} as ${client.name()}: ${describe(err)}`);
  }
  emit('logon', { client: client.name(), server_version: client.serverVersion(), name_hash: client.nameHash() });
  return client;
}

// redact hides the password of a URI with credentials in messages.
function redact(uri) {
  return uri.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

// deferred returns a promise with its resolve function, for events that
// arrive through callbacks.
function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

// describe renders what a rejected client promise carried.
function describe(err) {
  if (err instanceof Error) return err.message;
  if (err && err.message && err.message.reason) return `${err.message.status}: ${err.message.reason}`;
  if (err && typeof err.message === 'string') return err.message;
  try { return JSON.stringify(err); } catch (_) { return String(err); }
}

// Inbox collects messages delivered to one handler and lets a scenario wait
// for a number of them.
class Inbox {
  constructor(label) {
    this.label = label;
    this.messages = [];
    this.waiters = [];
    this.handler = (m) => this.push(m);
  }
  push(m) {
    this.messages.push({ topic: m.header.topic(), data: m.data });
    this.waiters = this.waiters.filter((w) => {
      if (this.messages.length >= w.n) { w.resolve(this.messages); return false; }
      return true;
    });
  }
  // wait resolves once n messages have arrived.
  wait(n) {
    if (this.messages.length >= n) return Promise.resolve(this.messages);
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }
}

// watchDeliveries counts incoming "p" headers per subscription id by looking
// at the raw frames, so deliveries the client itself would drop are seen too,
// and records when server heartbeats came in and client beats went out.
function watchDeliveries(client) {
  const bySid = {};
  const topics = []; // topic of every raw delivery, in arrival order
  const t0 = startedAt;
  const heartbeatAt = []; // ms since the driver started, per server heartbeat
  const beatAt = []; // ms since the driver started, per client beat
  client.transportFilter((data, outgoing) => {
    const text = outgoing ? data : data && data.data;
    if (typeof text !== 'string' || text[0] !== '{') return;
    let h;
    try { h = JSON.parse(text); } catch (_) { return; }
    if (outgoing) {
      if (h.c === 'heartbeat' && h.o === 'beat') beatAt.push(Date.now() - t0);
      return;
    }
    if (h.c === 'heartbeat') heartbeatAt.push(Date.now() - t0);
    if ((h.c === 'p' || h.c === 'publish') && typeof h.sids === 'string') {
      for (const sid of h.sids.split(',')) bySid[sid] = (bySid[sid] || 0) + 1;
      topics.push(h.t);
    }
  });
  return {
    deliveries: (sid) => bySid[sid] || 0,
    topics: () => topics.slice(),
    heartbeats: () => heartbeatAt.length,
    beats: () => beatAt.length,
    // timeline lists both, for diagnosing heartbeat cadence problems.
    timeline: () => ({ heartbeat_ms: heartbeatAt.slice(), beat_ms: beatAt.slice() }),
  };
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// payload returns a deterministic printable string of n characters, so any
// corruption or truncation shows up in a comparison.
function payload(n) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let x = 2463534242;
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = alphabet[x % alphabet.length];
  }
  return out.join('');
}

// ---------------------------------------------------------------------------
// Scenarios. Each returns the fields of its result line or throws.

const scenarios = {
  // logon: connect + logon, then a clean disconnect.
  async logon(o) {
    const c = await connect(newClient('js-logon'), o.uri);
    const version = c.serverVersion();
    check(/^\d+\.\d+\.\d+\.\d+/.test(version), `server version ${JSON.stringify(version)} has four numeric parts`);
    await c.disconnect();
    return { server_version: version, name_hash: c.nameHash() };
  },

  // pubsub: two JS clients; one subscribes, the other publishes --count
  // messages (with non-ASCII text) which must arrive whole and in order.
  async pubsub(o) {
    const sub = await connect(newClient('js-sub'), o.uri);
    const pub = await connect(newClient('js-pub'), o.uri);
    const inbox = new Inbox('sub');
    const subId = await sub.subscribe(inbox.handler, o.topic);
    emit('subscribed', { sub_id: subId, topic: o.topic });
    for (let i = 0; i < o.count; i++) pub.publish(o.topic, { seq: i, text: 'héllo wörld ✓' });
    const got = await inbox.wait(o.count);
    check(got.length === o.count, `received ${got.length} messages, want ${o.count}`);
    got.forEach((m, i) => {
      check(m.topic === o.topic, `message ${i} topic ${JSON.stringify(m.topic)}, want ${JSON.stringify(o.topic)}`);
      check(m.data && m.data.seq === i, `message ${i} has seq ${m.data && m.data.seq}`);
      check(m.data.text === 'héllo wörld ✓', `message ${i} text ${JSON.stringify(m.data.text)}`);
    });
    await pub.disconnect();
    await sub.disconnect();
    return { received: got.length };
  },

  // receive: subscribe to --topic, print "ready", then wait for --count
  // messages published by someone else and print each. With --echo-topic each
  // received body is published again there.
  async receive(o) {
    const c = await connect(newClient('js-receiver'), o.uri);
    const inbox = new Inbox('receive');
    const onMessage = (m) => {
      inbox.handler(m);
      emit('message', { topic: m.header.topic(), data: m.data });
      if (o.echoTopic) c.publish(o.echoTopic, m.data);
    };
    const subId = await c.subscribe(onMessage, o.topic);
    emit('ready', { sub_id: subId, topic: o.topic });
    const got = await inbox.wait(o.count);
    if (o.echoTopic) await c.flush();
    await c.disconnect();
    return { received: got.length };
  },

  // publish: publish --count messages {"seq":i,"from":"js"} to --topic, wait
  // for a flush ack so the broker has processed them all, then disconnect.
  async publish(o) {
    const c = await connect(newClient('js-publisher'), o.uri);
    for (let i = 0; i < o.count; i++) c.publish(o.topic, { seq: i, from: 'js' });
    await c.flush();
    await c.disconnect();
    return { published: o.count };
  },

  // regex: AMPS topic regexes are unanchored PCRE (wire spec §11); deliveries
  // carry the real topic and one frame may name several sids. --topic must be
  // free of regex metacharacters.
  async regex(o) {
    const base = o.topic;
    const sub = await connect(newClient('js-regex-sub'), o.uri);
    const pub = await connect(newClient('js-regex-pub'), o.uri);
    const anchored = new Inbox('anchored');
    const loose = new Inbox('loose');
    const anchoredRe = `^${base}/(a|b|end)$`;
    const looseRe = `${base}.b`; // "." matches "/"; unanchored: also "zz/<base>/b"
    await sub.subscribe(anchored.handler, anchoredRe);
    await sub.subscribe(loose.handler, looseRe);
    emit('subscribed', { anchored: anchoredRe, loose: looseRe });
    const sent = [`${base}/a`, `${base}/c`, `${base}/b`, `zz/${base}/b`, `${base}/end`];
    sent.forEach((t, i) => pub.publish(t, { i, t }));
    // The sentinel "<base>/end" is published last: once it is in, every
    // earlier message that was going to match has arrived too.
    await anchored.wait(3);
    const a = anchored.messages.map((m) => m.topic);
    const l = loose.messages.map((m) => m.topic);
    check(JSON.stringify(a) === JSON.stringify([`${base}/a`, `${base}/b`, `${base}/end`]),
      `anchored ${anchoredRe} got topics ${JSON.stringify(a)}`);
    check(JSON.stringify(l) === JSON.stringify([`${base}/b`, `zz/${base}/b`]), `unanchored ${looseRe} got topics ${JSON.stringify(l)}`);
    anchored.messages.forEach((m) => check(m.data.t === m.topic, `body ${JSON.stringify(m.data)} under topic ${m.topic}`));
    await pub.disconnect();
    await sub.disconnect();
    return { anchored: a, unanchored: l };
  },

  // filter: content filters (semantics §1) through subscribe(handler, topic,
  // filter). One client holds two filtered subscriptions on --topic and one
  // on a regex topic; a message several of them take arrives once, naming
  // them all in "sids", and the client hands it to each of their handlers.
  // The last message is a sentinel every filter takes: once it is in, every
  // earlier message that was going to match has arrived too.
  async filter(o) {
    const sub = await connect(newClient('js-filter-sub'), o.uri);
    const pub = await connect(newClient('js-filter-pub'), o.uri);
    const inboxes = {
      big: [new Inbox('big'), o.topic, '/qty > 100 OR /end = 1', [0, 4, 5]],
      ibm: [new Inbox('ibm'), o.topic, "/sym = 'IBM' AND /px BETWEEN 10 AND 200 OR /end = 1", [0, 2, 5]],
      rx: [new Inbox('rx'), `^${o.topic}$`, "/sym LIKE '^MS' OR /end IS NOT NULL", [1, 4, 5]],
    };
    for (const [inbox, topic, filter] of Object.values(inboxes)) await sub.subscribe(inbox.handler, topic, filter);
    const sent = [
      { i: 0, sym: 'IBM', qty: 500, px: 150 },
      { i: 1, sym: 'MSFT', qty: 5, px: 150 },
      { i: 2, sym: 'IBM', qty: 5, px: 150 },
      { i: 3, sym: 'IBM', qty: 5, px: 250 },
      { i: 4, sym: 'MSFT', qty: 1000, px: 1 },
      { i: 5, end: 1 },
    ];
    sent.forEach((m) => pub.publish(o.topic, m));
    const got = {};
    for (const [label, [inbox, , filter, want]] of Object.entries(inboxes)) {
      await inbox.wait(want.length);
      got[label] = inbox.messages.map((m) => m.data.i);
      check(JSON.stringify(got[label]) === JSON.stringify(want), `${label} (${filter}) got ${JSON.stringify(got[label])}, want ${JSON.stringify(want)}`);
    }
    await pub.disconnect();
    await sub.disconnect();
    return { received: got };
  },

  // unsubscribe: after the unsubscribe ack nothing more is delivered for that
  // subscription (wire spec §7.7). A second subscription on a sentinel topic
  // tells when everything published before the sentinel has been delivered.
  async unsubscribe(o) {
    const sub = await connect(newClient('js-unsub-sub'), o.uri);
    const pub = await connect(newClient('js-unsub-pub'), o.uri);
    const watch = watchDeliveries(sub);
    const strays = [];
    // The client hands this handler the raw header object, not a Message.
    sub.lastChanceMessageHandler((m) => strays.push(m.t));
    const main = new Inbox('main');
    const sentinel = new Inbox('sentinel');
    const sentinelTopic = `${o.topic}-sentinel`;
    const mainId = await sub.subscribe(main.handler, o.topic);
    await sub.subscribe(sentinel.handler, sentinelTopic);
    pub.publish(o.topic, { n: 1 });
    await main.wait(1);
    await sub.unsubscribe(mainId);
    const before = watch.deliveries(mainId);
    emit('unsubscribed', { sub_id: mainId });
    pub.publish(o.topic, { n: 2 });
    pub.publish(sentinelTopic, { n: 3 });
    await sentinel.wait(1);
    check(main.messages.length === 1, `handler got ${main.messages.length} messages, want 1`);
    check(watch.deliveries(mainId) === before, `${watch.deliveries(mainId) - before} deliveries for ${mainId} after its unsubscribe ack`);
    check(strays.length === 0, `deliveries for no live subscription: ${JSON.stringify(strays)}`);
    await pub.disconnect();
    await sub.disconnect();
    return { sub_id: mainId };
  },

  // large: one message of --size bytes (default 1 MiB) as JSON text. The Node
  // library fragments it on the way in; the broker must reassemble it.
  async large(o) {
    const sub = await connect(newClient('js-large-sub'), o.uri);
    const pub = await connect(newClient('js-large-pub'), o.uri);
    const inbox = new Inbox('large');
    await sub.subscribe(inbox.handler, o.topic);
    const overhead = '{"pad":""}'.length;
    check(o.size > overhead, `--size ${o.size} must exceed ${overhead}`);
    const pad = payload(o.size - overhead);
    const body = JSON.stringify({ pad });
    check(Buffer.byteLength(body) === o.size, `built body of ${Buffer.byteLength(body)} bytes, want ${o.size}`);
    pub.publish(o.topic, body);
    const [m] = await inbox.wait(1);
    check(m.data && typeof m.data.pad === 'string', 'delivered body has no "pad" string');
    check(m.data.pad.length === pad.length, `delivered pad of ${m.data.pad.length} chars, want ${pad.length}`);
    check(m.data.pad === pad, 'delivered pad differs from the published one');
    await pub.disconnect();
    await sub.disconnect();
    return { bytes: o.size };
  },

  // order: --count messages (the Go test asks 1,000) arrive complete and in
  // publish order.
  async order(o) {
    const sub = await connect(newClient('js-order-sub'), o.uri);
    const pub = await connect(newClient('js-order-pub'), o.uri);
    const inbox = new Inbox('order');
    await sub.subscribe(inbox.handler, o.topic);
    const start = process.hrtime.bigint();
    for (let i = 0; i < o.count; i++) pub.publish(o.topic, { seq: i });
    const got = await inbox.wait(o.count);
    const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
    for (let i = 0; i < got.length; i++) {
      check(got[i].data.seq === i, `message ${i} has seq ${got[i].data.seq}`);
    }
    await pub.disconnect();
    await sub.disconnect();
    return { received: got.length, elapsed_ms: Math.round(elapsedMs) };
  },

  // heartbeat: heartbeat(1) held for --hold idle seconds. The client reports
  // "Heartbeat absence" after 2 s without server heartbeats (wire spec
  // §10.2), so staying error-free proves the broker ticks; a flush afterwards
  // proves the connection still answers.
  async heartbeat(o) {
    const c = newClient('js-heartbeat');
    const watch = watchDeliveries(c);
    diagnostics.heartbeat = watch.timeline;
    c.heartbeat(1);
    await connect(c, o.uri);
    await new Promise((resolve) => setTimeout(resolve, o.hold * 1000));
    const heartbeats = watch.heartbeats();
    const beats = watch.beats();
    emit('held', Object.assign({ seconds: o.hold, heartbeats, beats }, watch.timeline()));
    check(errors.length === 0, `client errors while idle: ${JSON.stringify(errors)}`);
    check(heartbeats >= 2, `${heartbeats} server heartbeats in ${o.hold} s with heartbeat(1)`);
    check(beats >= 1, `client sent ${beats} beats`);
    await c.flush();
    await c.disconnect();
    return { heartbeats, beats };
  },

  // failack: failure acks surface as rejected promises carrying the reason
  // (wire spec §7.4, §9), and the connection stays usable afterwards.
  async failack(o) {
    const c = await connect(newClient('js-failack'), o.uri);
    const ignore = () => {};
    const reasons = {};
    for (const [label, topic, filter] of [['bad_regex', '(', undefined], ['bad_filter', o.topic, '/x = = (']]) {
      let rejected = null;
      try {
        const id = await c.subscribe(ignore, topic, filter);
        emit('unexpected_success', { label, sub_id: id });
      } catch (err) {
        rejected = err;
      }
      check(rejected !== null, `${label}: subscribe(${JSON.stringify(topic)}, ${JSON.stringify(filter)}) resolved; want a rejection`);
      check(rejected instanceof Error, `${label}: rejected with ${describe(rejected)}, want an Error`);
      reasons[label] = rejected.message;
      emit('rejected', { label, reason: rejected.message });
    }
    const inbox = new Inbox('after');
    await c.subscribe(inbox.handler, o.topic);
    c.publish(o.topic, { after: 'failures' });
    const [m] = await inbox.wait(1);
    check(m.data.after === 'failures', `after the failures got ${JSON.stringify(m.data)}`);
    await c.disconnect();
    return { reasons };
  },

  // badlogon: --uri carries credentials the broker refuses. connect() must
  // reject with the logon's {commandId, message}, message being the failure
  // ack (wire spec §9.1), and then the broker must close the connection
  // (§7.1 step 3): the client keeps the socket open after a failed logon and
  // this scenario never calls disconnect(), so the Disconnected state can
  // only come from the socket being closed under the client. The reason is
  // reported for the Go test to compare.
  async badlogon(o) {
    const c = newClient('js-badlogon');
    const states = [];
    const closed = deferred();
    c.addConnectionStateListener((state) => {
      states.push(state);
      if (state === Client.ConnectionStateListener.Disconnected) closed.resolve();
    });
    let rejected = null;
    try {
      await c.connect(o.uri);
      emit('unexpected_logon', { server_version: c.serverVersion() });
    } catch (err) {
      rejected = err;
    }
    check(rejected !== null, `connect(${redact(o.uri)}) resolved; want a rejection`);
    check(!(rejected instanceof Error), `connect() rejected with Error(${JSON.stringify(rejected.message)}), want the logon's {commandId, message}`);
    const ack = (rejected && rejected.message) || {};
    emit('rejected', { command_id: rejected.commandId, ack });
    check(typeof rejected.commandId === 'string' && rejected.commandId !== '', `rejection has commandId ${JSON.stringify(rejected.commandId)}`);
    check(ack.c === 'ack' && ack.a === 'processed', `rejection carries ${JSON.stringify(ack)}, want the processed logon ack`);
    check(ack.cid === rejected.commandId, `ack cid ${JSON.stringify(ack.cid)} is not the logon's ${JSON.stringify(rejected.commandId)}`);
    await closed.promise;
    emit('closed_by_server', { states });
    check(!c.isConnected(), 'isConnected() is true after the server closed the socket');
    return { command_id: rejected.commandId, status: ack.status, reason: ack.reason, states };
  },

  // denysub: the --uri user may not read --denied-topic. Subscribing to it
  // rejects with Error(reason) (wire spec §9.1, semantics §8.2); the
  // connection stays usable, shown by a subscription to --topic that the
  // user may read and write.
  async denysub(o) {
    const c = await connect(newClient('js-denysub'), o.uri);
    let rejected = null;
    try {
      const id = await c.subscribe(() => {}, o.deniedTopic);
      emit('unexpected_success', { sub_id: id, topic: o.deniedTopic });
    } catch (err) {
      rejected = err;
    }
    check(rejected !== null, `subscribe(${JSON.stringify(o.deniedTopic)}) resolved; want a rejection`);
    check(rejected instanceof Error, `subscribe rejected with ${describe(rejected)}, want an Error`);
    emit('rejected', { topic: o.deniedTopic, reason: rejected.message });
    const inbox = new Inbox('allowed');
    await c.subscribe(inbox.handler, o.topic);
    c.publish(o.topic, { after: 'refusal' });
    const [m] = await inbox.wait(1);
    check(m.data.after === 'refusal', `after the refusal got ${JSON.stringify(m.data)}`);
    await c.disconnect();
    return { reason: rejected.message };
  },

  // denypub: the --uri user may not write --denied-topic. publish() itself
  // reports nothing, so the refusal is observed the two ways the client
  // offers (see the notes at the top):
  // * the Command API with a processed ack: execute() hands the ack, with
  //   status and reason, to the command's handler;
  // * publish() on a client with a publish store, which asks for persisted
  //   acks: the client calls failedWriteHandler(message, reason).
  // Each client then publishes to --topic, which it may write, and the
  // messages arrive, so the refusals left the connections usable.
  async denypub(o) {
    const sub = await connect(newClient('js-denypub-sub'), o.uri);
    const inbox = new Inbox('allowed');
    await sub.subscribe(inbox.handler, o.topic);

    // Acks arrive in command order, so once a later flush is acked every
    // ack of the publishes before it has been handled: the checks below
    // never wait for an ack that may not come.
    const cmd = await connect(newClient('js-denypub-cmd'), o.uri);
    const acks = {};
    const publishAck = (topic, data) => {
      const command = new Command('publish').topic(topic).data(data).ackType('processed');
      return cmd.execute(command, (m) => {
        if (m.header.command() === 'ack' && m.header.ackType() === 'processed') {
          acks[topic] = { status: m.header.status(), reason: m.header.reason() || '' };
          emit('publish_ack', Object.assign({ topic }, acks[topic]));
        }
      });
    };
    await publishAck(o.deniedTopic, { from: 'command', n: 1 });
    await publishAck(o.topic, { from: 'command', n: 2 });
    await cmd.flush();
    check(acks[o.deniedTopic] !== undefined, `no processed ack for the publish to ${o.deniedTopic} before the flush ack`);
    check(acks[o.topic] !== undefined, `no processed ack for the publish to ${o.topic} before the flush ack`);

    const store = newClient('js-denypub-store').publishStore(new MemoryPublishStore());
    const persistedAcks = []; // raw persisted acks, for the report
    store.transportFilter((data, outgoing) => {
      const text = outgoing ? data : data && data.data;
      if (typeof text !== 'string' || text[0] !== '{') return;
      try {
        const h = JSON.parse(text);
        if (h.c === 'ack' && h.a === 'persisted') persistedAcks.push(h);
      } catch (_) { /* not a header */ }
    });
    const failedWrites = [];
    store.failedWriteHandler((m, reason) => {
      // m is the stored message when the ack names its sequence ("s"),
      // else the ack itself (a raw object); report what the application got.
      const header = m && m.header ? { c: m.header.command(), t: m.header.topic() } : { c: m && m.c, t: m && m.t };
      const data = m && m.data !== undefined ? m.data : null;
      failedWrites.push({ reason, header, data });
      emit('failed_write', { reason, header, data });
    });
    await connect(store, o.uri);
    store.publish(o.deniedTopic, { from: 'store', n: 3 });
    store.publish(o.topic, { from: 'store', n: 4 });
    await store.flush('persisted');
    check(failedWrites.length === 1, `failedWriteHandler called ${failedWrites.length} times before the flush ack, want 1: ${JSON.stringify(failedWrites)}`);

    const got = await inbox.wait(2);
    const seen = got.map((m) => m.data.n);
    check(JSON.stringify(seen) === '[2,4]', `subscriber to ${o.topic} got messages ${JSON.stringify(seen)}, want [2,4]`);
    await store.disconnect();
    await cmd.disconnect();
    await sub.disconnect();
    return {
      command_denied: acks[o.deniedTopic],
      command_allowed: acks[o.topic],
      failed_write: failedWrites[0],
      persisted_acks: persistedAcks,
    };
  },

  // denyregex: the --uri user subscribes to a regex matching both --topic/rx/
  // and --denied-topic/rx/ topics; the --peer-uri user, who may write both,
  // publishes to them alternately and last to <topic>/rx/end. Forbidden
  // topics are withheld from regex subscriptions (semantics §8.2); the
  // marker is published last, so once it is in every permitted message has
  // arrived and any forbidden one would have too. The raw frames are
  // watched as well, so a delivery the client itself dropped still counts.
  // --topic and --denied-topic must be free of regex metacharacters.
  async denyregex(o) {
    check(o.peerUri !== '', 'denyregex needs --peer-uri');
    const sub = newClient('js-denyregex-sub');
    const watch = watchDeliveries(sub);
    const strays = [];
    sub.lastChanceMessageHandler((m) => strays.push(m.t));
    await connect(sub, o.uri);
    const peer = await connect(newClient('js-denyregex-peer'), o.peerUri);
    const marker = `${o.topic}/rx/end`;
    const pattern = `^(${o.topic}|${o.deniedTopic})/rx/`;
    const got = [];
    const done = deferred();
    await sub.subscribe((m) => {
      got.push(m.header.topic());
      if (m.header.topic() === marker) done.resolve();
    }, pattern);
    emit('subscribed', { pattern });
    const sent = [];
    for (let i = 1; i <= 3; i++) sent.push(`${o.deniedTopic}/rx/${i}`, `${o.topic}/rx/${i}`);
    sent.push(marker);
    sent.forEach((t, i) => peer.publish(t, { i, t }));
    await done.promise;
    const want = sent.filter((t) => t.startsWith(`${o.topic}/`));
    check(JSON.stringify(got) === JSON.stringify(want), `regex ${pattern} got topics ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    const raw = watch.topics();
    check(JSON.stringify(raw) === JSON.stringify(want), `raw deliveries on topics ${JSON.stringify(raw)}, want ${JSON.stringify(want)}`);
    check(strays.length === 0, `deliveries for no live subscription: ${JSON.stringify(strays)}`);
    await peer.disconnect();
    await sub.disconnect();
    return { pattern, topics: got };
  },

  // disconnect: disconnect() resolves and closes with 1000; the same Client
  // then connects again under the same name (its ids restart at auto1, wire
  // spec §13.2) and works.
  async disconnect(o) {
    const c = await connect(newClient('js-disconnect'), o.uri);
    await c.subscribe(() => {}, o.topic);
    await c.disconnect();
    check(!c.isConnected(), 'isConnected() is true after disconnect()');
    emit('disconnected', {});
    await connect(c, o.uri);
    const inbox = new Inbox('again');
    await c.subscribe(inbox.handler, o.topic);
    c.publish(o.topic, { again: true });
    const [m] = await inbox.wait(1);
    check(m.data.again === true, `after reconnect got ${JSON.stringify(m.data)}`);
    await c.disconnect();
    return { reconnected: true };
  },
};

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    emit('usage', { error: err.message, scenarios: Object.keys(scenarios) });
    return finish(undefined, false, { error: err.message }, EXIT_USAGE);
  }
  const run = scenarios[opts.scenario];
  if (!run) {
    const msg = `unknown scenario ${JSON.stringify(opts.scenario)}`;
    emit('usage', { error: msg, scenarios: Object.keys(scenarios) });
    return finish(opts.scenario, false, { error: msg }, EXIT_USAGE);
  }
  // The hard timeout: the run ends here whatever the client is waiting for.
  setTimeout(() => {
    finish(opts.scenario, false, failure(`timed out after ${opts.timeout} s`), EXIT_TIMEOUT);
  }, opts.timeout * 1000);
  try {
    const fields = await Promise.race([run(opts), clientFailed]);
    if (errors.length > 0) {
      return finish(opts.scenario, false, Object.assign(failure('client reported errors'), fields));
    }
    finish(opts.scenario, true, fields);
  } catch (err) {
    finish(opts.scenario, false, failure(describe(err)));
  }
}

// failure builds the fields of a failed result line.
function failure(message) {
  const fields = { error: message, client_errors: errors };
  for (const [k, f] of Object.entries(diagnostics)) fields[k] = f();
  return fields;
}

process.on('unhandledRejection', (err) => {
  finish(process.argv[2], false, failure(`unhandled rejection: ${describe(err)}`));
});

main();
