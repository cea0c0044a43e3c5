#!/usr/bin/env node
// driver.js runs one named scenario of the official AMPS JavaScript client
// (npm "amps", pinned in package.json) against a broker and reports what
// happened as JSON lines on stdout. The Go tests in this folder start it.
//
// Usage:
//   node driver.js <scenario> [--uri URI] [--topic T] [--count N]
//                  [--echo-topic T] [--hold SECONDS] [--size BYTES]
//                  [--denied-topic T] [--peer-uri URI] [--timeout SECONDS]
//                  [--after N]
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
// * SOW: sow(handler, topic, filter?, params?) and sowAndSubscribe(...)
//   send bs 10 unless params.batchSize, query_id = cid (and sub_id = cid
//   for sowAndSubscribe), and resolve with that id on the processed ack;
//   a failure ack rejects with Error(reason). params map to Command
//   setters (topN -> top_n header, orderBy -> orderby, options -> o,
//   sowKeys -> sow_keys, ackType -> acks for the handler). sow asks
//   "processed,completed" and drops its handler after completed (plus any
//   acks the application asked for); sowAndSubscribe asks "processed" only.
//   The handler gets group_begin, one message per record (the batch's
//   header object, reused for every record of the batch, with the record
//   header's k, x, ts merged in and data set), group_end, the acks asked
//   for, and for sowAndSubscribe the live "p" messages. The batches
//   themselves are not visible to the application, only in the frames.
// * sowDelete(topic, filter, options?), sowDeleteByKeys(topic, keys) and
//   sowDeleteByData(topic, data) send sow_delete with a: "stats" and
//   resolve with the first stats ack as a Message, success or failure
//   alike (header.status(), reason(), recordsDeleted(), matches(),
//   topicMatches()); they never reject on a failure ack.
// * Out of focus: there is no oof-specific API. options: 'oof' (or
//   Command.options('oof')) asks for the notices; the client routes an
//   "oof" header like a "p" (by its sids; the next frame is the body
//   unless l is 0) to the subscription's handler, where
//   header.command() === 'oof', header.reason() is the reason,
//   header.sowKey() the key and data the deserialized body.
//   params.expiration (Command.expiration(n)) sends "e": n on a publish.
// * Replacing a sowAndSubscribe: params { subId, options: 'replace,oof' }
//   send sub_id = query_id = subId; the client registers the new handler
//   under that id at once, so everything for the subscription from then
//   on (the notices, the group, live messages) reaches the new handler and
//   the old one gets nothing more.
// * Deltas: deltaPublish(topic, data) sends {"c":"delta_publish","t":...}
//   exactly as publish() does (with a publish store: a "persisted" and "s").
//   deltaSubscribe(handler, topic, filter?, params?) and
//   sowAndDeltaSubscribe(...) are subscribe and sowAndSubscribe with the
//   command delta_subscribe / sow_and_delta_subscribe; the handler gets each
//   body parsed, partial or full, and nothing marks a delta as such.
// * Bookmarks: params.bookmark becomes "bm". Without a bookmark store it is
//   sent as given ('recent' becomes '0'). With one (createMemoryBacked:
//   bookmark store, DefaultSubscriptionManager, MemoryPublishStore) the
//   subscribe asks "persisted,processed", and after a reconnect the manager
//   resubscribes every subscription with bookmarkStore.mostRecent(subId): in
//   the bookmark scenario "0" stayed "0" and "1234567|8|" stayed itself.
//   Reconnecting needs a delay strategy (reconnectDelay(ms)); without one
//   the client is in "classic" mode and stays disconnected.
// * Publish store: connect() sets the next "s" to Date.now() * 10^6 + 1;
//   after logon the client calls publishStore.discardUpTo(<logon ack s>) and
//   replays what is left with the original "s". publish() while
//   disconnected only stores the message (no error).
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
const DEFAULT_AFTER = 6; // messages after the restart in the "replay" scenario
const RECONNECT_DELAY_MS = 100; // between connection attempts while a broker restarts
const CONNECT_ATTEMPT_MS = 2000; // the longest one such attempt may take
const SETTLE_MS = 300; // quiet time in which no further delivery may arrive

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
    after: DEFAULT_AFTER,
  };
  const numeric = {
    '--count': 'count', '--hold': 'hold', '--size': 'size', '--timeout': 'timeout', '--after': 'after',
  };
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

// memoryBacked returns a client made by Client.createMemoryBacked (bookmark
// store, subscription manager, publish store) that reconnects every
// RECONNECT_DELAY_MS after losing its connection, and resubscribes. Its
// errors are collected rather than fatal (a lost connection is one of
// them), and so are its connection states; resubscribed() returns a
// promise of its next Resubscribed state.
function memoryBacked(name) {
  const client = Client.createMemoryBacked(name);
  client.reconnectDelay(RECONNECT_DELAY_MS);
  const errs = [];
  client.errorHandler((err) => errs.push({ name: err && err.name, message: err && (err.message || String(err)) }));
  const states = [];
  let next = deferred();
  client.addConnectionStateListener((s) => {
    states.push(s);
    if (s === Client.ConnectionStateListener.Resubscribed) {
      next.resolve();
      next = deferred();
    }
  });
  return { client, errors: errs, states, resubscribed: () => next.promise };
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

// QueryLog records, in order, what a sow or sowAndSubscribe handler is
// given. The client hands every record of a batch to the handler in one
// reused header object (see the notes on SOW below), so each message is
// copied into a plain object at once.
class QueryLog {
  constructor(label) {
    this.label = label;
    this.events = [];
    this.waiters = [];
    this.handler = (m) => this.push(m);
  }
  push(m) {
    const h = m.header;
    const e = { c: h.command(), query_id: h.queryId() };
    if (e.c === 'ack') {
      Object.assign(e, {
        a: h.ackType(), status: h.status(), reason: h.reason(), records_returned: h.recordsReturned(),
        matches: h.matches(), topic_matches: h.topicMatches(),
      });
    } else if (e.c !== 'group_begin' && e.c !== 'group_end') {
      Object.assign(e, { topic: h.topic(), key: h.sowKey(), sids: h.subIds(), data: m.data });
      if (e.c === 'oof') e.reason = h.reason();
    }
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (w.pred(e)) { w.resolve(this.events.slice()); return false; }
      return true;
    });
  }
  // until resolves with the events so far once one event satisfies pred.
  until(pred) {
    if (this.events.some(pred)) return Promise.resolve(this.events.slice());
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  // shape is the list of event kinds: "group_begin", "sow", "ack:completed"...
  shape() {
    return this.events.map((e) => (e.c === 'ack' ? `ack:${e.a}` : e.c));
  }
  // of returns the events of command c ("sow", "p").
  of(c) { return this.events.filter((e) => e.c === c); }
}

// isAck and isCommand build QueryLog.until predicates.
const isAck = (a) => (e) => e.c === 'ack' && e.a === a;
const isCommand = (c) => (e) => e.c === c;

// watchBatches records, from the raw frames, the "bs" of every "sow" batch
// header per query id, so the batching the broker chose is visible (the
// client itself hands records over one by one). Record headers ({"k":..})
// and JSON bodies carry no "c" and are skipped.
function watchBatches(client) {
  const byQuery = {};
  client.transportFilter((data, outgoing) => {
    const text = !outgoing && data && data.data;
    if (typeof text !== 'string' || text[0] !== '{') return;
    let h;
    try { h = JSON.parse(text); } catch (_) { return; }
    if (h.c === 'sow') (byQuery[h.query_id] = byQuery[h.query_id] || []).push(h.bs);
  });
  return (queryId) => byQuery[queryId] || [];
}

// rawDeliveries records, from the raw incoming frames, every "p" delivery
// with the body text that follows it: in text mode the header and the body
// come as two frames (none when l is 0). The client hands handlers parsed
// data only, so this is where the exact bytes the broker sent are seen.
function rawDeliveries(client) {
  const got = [];
  let pending = null;
  client.transportFilter((data, outgoing) => {
    const text = !outgoing && data && data.data;
    if (typeof text !== 'string') return;
    if (pending) {
      pending.body = text;
      got.push(pending);
      pending = null;
      return;
    }
    if (text[0] !== '{') return;
    let h;
    try { h = JSON.parse(text); } catch (_) { return; }
    if (h.c !== 'p') return;
    const d = { t: h.t, k: h.k, sids: h.sids, body: '' };
    if (h.l > 0) pending = d;
    else got.push(d);
  });
  return got;
}

// same compares two values as JSON, for checks on lists and records.
function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

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

  // sowquery: sow() over a SOW topic keyed by /id (--topic; the broker must
  // declare it so), checked record by record: the data, a key on every
  // record (the same key for the same record in every query), the order of
  // orderBy, the limit of topN and of the top_n option, the batches of
  // batchSize as sent on the wire, and the messages the client hands the
  // handler: group_begin, the records, group_end, then the acks the
  // application asked for (completed with records_returned, stats with
  // matches and topic_matches). It also queries by sow keys, without keys
  // (no_sowkey), with an empty result, and a topic that has no SOW, which
  // rejects. It reports every record's key by id for the Go test.
  async sowquery(o) {
    const pub = await connect(newClient('js-sow-pub'), o.uri);
    const c = newClient('js-sow-query');
    const batches = watchBatches(c);
    await connect(c, o.uri);
    const rows = [
      { id: 1, sym: 'IBM', qty: 10 },
      { id: 2, sym: 'MSFT', qty: 200 },
      { id: 3, sym: 'IBM', qty: 30 },
      { id: 4, sym: 'AAPL', qty: 400 },
      { id: 5, sym: 'MSFT', qty: 50 },
      { id: 6, sym: 'AAPL', qty: 60 },
      { id: 7, sym: 'IBM', qty: 700, note: 'naïve ☃' },
      { id: 1, sym: 'IBM', qty: 100 }, // replaces the first record
    ];
    rows.forEach((r) => pub.publish(o.topic, r));
    await pub.flush(); // processed in order: every publish is stored
    const current = new Map(rows.map((r) => [r.id, r])); // the last of each id
    const keys = {}; // id -> key, the same in every query

    // checkRecords checks a query's records against the ids wanted, in
    // order, with their current data, topic and keys.
    const checkRecords = (label, log, wantIds, opts = {}) => {
      const recs = log.of('sow');
      const ids = recs.map((r) => r.data && r.data.id);
      check(same(ids, wantIds), `${label}: records with ids ${JSON.stringify(ids)}, want ${JSON.stringify(wantIds)}`);
      recs.forEach((r) => {
        check(same(r.data, current.get(r.data.id)), `${label}: record ${JSON.stringify(r.data)}, want ${JSON.stringify(current.get(r.data.id))}`);
        check(r.topic === o.topic, `${label}: record on topic ${JSON.stringify(r.topic)}`);
        check(r.query_id === log.queryId, `${label}: record with query_id ${JSON.stringify(r.query_id)}, want ${JSON.stringify(log.queryId)}`);
        if (opts.noKey) {
          check(r.key === undefined, `${label}: record ${r.data.id} has key ${JSON.stringify(r.key)} despite no_sowkey`);
          return;
        }
        check(typeof r.key === 'string' && r.key !== '', `${label}: record ${r.data.id} has key ${JSON.stringify(r.key)}`);
        if (keys[r.data.id] === undefined) keys[r.data.id] = r.key;
        check(keys[r.data.id] === r.key, `${label}: record ${r.data.id} has key ${r.key}, earlier ${keys[r.data.id]}`);
      });
      log.events.forEach((e) => check(e.query_id === log.queryId, `${label}: ${e.c} with query_id ${JSON.stringify(e.query_id)}`));
    };
    // run issues a query through start (which returns the promise of the
    // client call) and waits for the event that ends it.
    const run = async (label, start, end) => {
      const log = new QueryLog(label);
      log.queryId = await start(log.handler);
      await log.until(end);
      emit('query', { label, query_id: log.queryId, events: log.events, batches: batches(log.queryId) });
      return log;
    };
    const shape = (n, tail) => ['group_begin', ...Array(n).fill('sow'), 'group_end', ...tail];
    const checkBatches = (label, log, want) => {
      const got = batches(log.queryId);
      check(same(got, want), `${label}: batches of ${JSON.stringify(got)} records, want ${JSON.stringify(want)}`);
    };

    // Filter, orderBy descending, batchSize 2, the completed and stats acks.
    const a = await run('filter_orderby_batches',
      (h) => c.sow(h, o.topic, '/qty >= 60', { batchSize: 2, orderBy: '/qty DESC', ackType: 'completed,stats' }),
      isAck('stats'));
    checkRecords('filter_orderby_batches', a, [7, 4, 2, 1, 6]);
    check(same(a.shape(), shape(5, ['ack:completed', 'ack:stats'])), `filter_orderby_batches: handler got ${JSON.stringify(a.shape())}`);
    checkBatches('filter_orderby_batches', a, [2, 2, 1]);
    const [completed, stats] = a.events.slice(-2);
    check(completed.status === 'success' && completed.records_returned === 5, `completed ack ${JSON.stringify(completed)}, want success with records_returned 5`);
    check(stats.status === 'success' && stats.records_returned === 5 && stats.matches === 5 && stats.topic_matches === 7,
      `stats ack ${JSON.stringify(stats)}, want records_returned 5, matches 5, topic_matches 7`);

    // topN with orderBy ascending and the client's default batch size (10):
    // no acks asked, so group_end is the last thing the handler sees.
    const b = await run('topn', (h) => c.sow(h, o.topic, undefined, { topN: 3, orderBy: '/id' }), isCommand('group_end'));
    checkRecords('topn', b, [1, 2, 3]);
    checkBatches('topn', b, [3]);

    // The Command API: two orderby fields, the top_n option, batch size 4.
    const cq = await run('command_two_keys', (h) => c.execute(new Command('sow').topic(o.topic)
      .filter("/sym = 'IBM' OR /sym = 'AAPL'").orderBy('/sym ASC, /qty DESC').batchSize(4)
      .options('top_n=4').ackType('completed'), h), isAck('completed'));
    checkRecords('command_two_keys', cq, [4, 6, 7, 1]);
    check(same(cq.shape(), shape(4, ['ack:completed'])), `command_two_keys: handler got ${JSON.stringify(cq.shape())}`);
    checkBatches('command_two_keys', cq, [4]);
    check(cq.events[cq.events.length - 1].records_returned === 4, `command_two_keys: completed ${JSON.stringify(cq.events[cq.events.length - 1])}`);

    // Every record once, in id order: this fills keys for all seven.
    const all = await run('all', (h) => c.sow(h, o.topic, '', { orderBy: '/id', batchSize: 3 }), isCommand('group_end'));
    checkRecords('all', all, [1, 2, 3, 4, 5, 6, 7]);
    checkBatches('all', all, [3, 3, 1]);
    check(new Set(Object.values(keys)).size === 7, `keys are not distinct: ${JSON.stringify(keys)}`);

    // By sow keys: exactly the records named.
    const byKeys = await run('sow_keys', (h) => c.sow(h, o.topic, undefined, { sowKeys: `${keys[5]},${keys[2]}`, orderBy: '/id' }), isCommand('group_end'));
    checkRecords('sow_keys', byKeys, [2, 5]);

    // no_sowkey: the records come without k.
    const noKey = await run('no_sowkey', (h) => c.sow(h, o.topic, '/id = 3', { options: 'no_sowkey' }), isCommand('group_end'));
    checkRecords('no_sowkey', noKey, [3], { noKey: true });

    // Nothing matches: still group_begin and group_end, and completed.
    const none = await run('empty', (h) => c.sow(h, o.topic, '/qty > 100000', { ackType: 'completed' }), isAck('completed'));
    check(same(none.shape(), shape(0, ['ack:completed'])), `empty: handler got ${JSON.stringify(none.shape())}`);
    check(none.events[2].records_returned === 0, `empty: completed ${JSON.stringify(none.events[2])}`);

    // A topic without SOW: the promise rejects with the failure's reason.
    let rejected = null;
    try {
      await c.sow(() => {}, `${o.topic}-plain`);
    } catch (err) {
      rejected = err;
    }
    check(rejected instanceof Error, `sow on ${o.topic}-plain: ${rejected === null ? 'resolved' : describe(rejected)}, want a rejection with an Error`);
    await pub.disconnect();
    await c.disconnect();
    return { keys, not_sow_reason: rejected.message };
  },

  // sowsubscribe: sowAndSubscribe() on --topic (a SOW topic keyed by /id)
  // with a filter: the snapshot (group_begin, records with keys, group_end,
  // completed) reaches the handler before any live message; then live
  // publishes arrive as "p" carrying the record's key and the sub id: an
  // update of a record in the snapshot keeps its key, a new record gets a
  // new one, and records outside the filter (or leaving it: no oof asked)
  // are not delivered. A second subscription races a stream of versions of
  // one record: every version is either in its snapshot or delivered live
  // after it, never both, never neither. A third one, on a topic without
  // SOW, gets an empty group then live messages without keys.
  async sowsubscribe(o) {
    const pub = await connect(newClient('js-sas-pub'), o.uri);
    const sub = newClient('js-sas-sub');
    const batches = watchBatches(sub);
    const strays = [];
    sub.lastChanceMessageHandler((m) => strays.push(m));
    await connect(sub, o.uri);
    pub.publish(o.topic, { id: 1, qty: 5 });
    pub.publish(o.topic, { id: 2, qty: 500 });
    pub.publish(o.topic, { id: 3, qty: 150 });
    await pub.flush();

    const log = new QueryLog('sas');
    const subId = await sub.sowAndSubscribe(log.handler, o.topic, '/qty > 100', { batchSize: 1, ackType: 'completed' });
    await log.until(isAck('completed'));
    const snap = log.of('sow');
    const snapIds = snap.map((r) => r.data.id).sort();
    check(same(snapIds, [2, 3]), `snapshot has ids ${JSON.stringify(snapIds)}, want [2,3]`);
    check(same(batches(subId), [1, 1]), `snapshot batches of ${JSON.stringify(batches(subId))} records, want [1,1] with batchSize 1`);
    const snapKey = {};
    snap.forEach((r) => {
      check(typeof r.key === 'string' && r.key !== '', `snapshot record ${JSON.stringify(r.data)} has key ${JSON.stringify(r.key)}`);
      check(r.topic === o.topic && r.query_id === subId, `snapshot record on ${r.topic} query ${r.query_id}, want ${o.topic} ${subId}`);
      snapKey[r.data.id] = r.key;
    });
    check(same(snap.find((r) => r.data.id === 3).data, { id: 3, qty: 150 }), `snapshot record 3 is ${JSON.stringify(snap.find((r) => r.data.id === 3).data)}`);

    pub.publish(o.topic, { id: 3, qty: 300 }); // update in scope
    pub.publish(o.topic, { id: 1, qty: 6 }); // stays out of scope
    pub.publish(o.topic, { id: 4, qty: 1000 }); // new, in scope
    pub.publish(o.topic, { id: 2, qty: 50 }); // leaves the scope
    pub.publish(o.topic, { id: 9, qty: 999, end: true }); // sentinel, in scope
    await log.until((e) => e.c === 'p' && e.data.end === true);
    check(same(log.shape(), ['group_begin', 'sow', 'sow', 'group_end', 'ack:completed', 'p', 'p', 'p']),
      `handler got ${JSON.stringify(log.shape())}, want the group, completed, then 3 live messages`);
    const live = log.of('p');
    check(same(live.map((m) => m.data), [{ id: 3, qty: 300 }, { id: 4, qty: 1000 }, { id: 9, qty: 999, end: true }]),
      `live messages ${JSON.stringify(live.map((m) => m.data))}`);
    live.forEach((m) => {
      check(m.topic === o.topic && m.sids.split(',').includes(subId), `live message on ${m.topic} for ${m.sids}, want ${o.topic} for ${subId}`);
      check(typeof m.key === 'string' && m.key !== '', `live message ${JSON.stringify(m.data)} has key ${JSON.stringify(m.key)}`);
    });
    check(live[0].key === snapKey[3], `update of record 3 has key ${live[0].key}, its snapshot key was ${snapKey[3]}`);
    check(live[1].key !== snapKey[2] && live[1].key !== snapKey[3] && live[1].key !== live[2].key, `new records reuse keys: ${JSON.stringify(live.map((m) => m.key))}`);

    // The race: versions 0..n-1 of record 50 are sent while a second
    // client subscribes to it; the snapshot holds at most one version and
    // the live messages must continue from exactly the next one.
    const n = Math.max(o.count, 2);
    const racer = await connect(newClient('js-sas-racer'), o.uri);
    const race = new QueryLog('race');
    for (let v = 0; v < n; v++) {
      pub.publish(o.topic, { id: 50, v, qty: 2000 });
      if (v === Math.floor(n / 4)) race.queryId = racer.sowAndSubscribe(race.handler, o.topic, '/id = 50', { batchSize: 10 });
    }
    race.queryId = await race.queryId;
    await race.until((e) => e.c === 'p' && e.data.v === n - 1 || e.c === 'sow' && e.data.v === n - 1);
    const seen = race.events.filter((e) => e.c === 'sow' || e.c === 'p').map((e) => e.data.v);
    const raceShape = race.shape();
    check(raceShape.indexOf('group_end') >= 0 && raceShape.slice(0, raceShape.indexOf('group_end')).every((c) => c !== 'p'),
      `race: a live message before group_end: ${JSON.stringify(raceShape)}`);
    const first = seen.length > 0 ? seen[0] : -1;
    const inSnap = race.of('sow').length;
    check(inSnap <= 1, `race: snapshot holds ${inSnap} records of one key`);
    // Without a snapshot record the subscription came before the record
    // existed, so the live messages must start at the first version.
    check(inSnap === 1 || first === 0, `race: empty snapshot, then live versions from ${first}: versions 0..${first - 1} were lost`);
    const want = Array.from({ length: n - first }, (_, i) => first + i);
    check(same(seen, want), `race: versions ${JSON.stringify(seen)}, want each of ${first}..${n - 1} once in order`);

    // A topic without SOW: an empty group, then live messages without k.
    const plainTopic = `${o.topic}-plain`;
    const plain = new QueryLog('plain');
    plain.queryId = await sub.sowAndSubscribe(plain.handler, plainTopic);
    await plain.until(isCommand('group_end'));
    pub.publish(plainTopic, { x: 1 });
    await plain.until(isCommand('p'));
    check(same(plain.shape(), ['group_begin', 'group_end', 'p']), `plain topic: handler got ${JSON.stringify(plain.shape())}`);
    check(plain.events[2].key === undefined && same(plain.events[2].data, { x: 1 }), `plain topic live message ${JSON.stringify(plain.events[2])}`);
    check(strays.length === 0, `deliveries for no live subscription: ${JSON.stringify(strays)}`);
    await racer.disconnect();
    await pub.disconnect();
    await sub.disconnect();
    return { sub_id: subId, snapshot_keys: snapKey, live_keys: live.map((m) => m.key), race: { versions: n, snapshot: inSnap, first } };
  },

  // sowdelete: sowDelete (filter), sowDeleteByKeys and sowDeleteByData on
  // --topic (a SOW topic keyed by /id), each resolving with the stats ack
  // and its records_deleted; after each, a sow shows exactly the records
  // left. A delete on a topic without SOW resolves with a failure ack.
  async sowdelete(o) {
    const c = await connect(newClient('js-sowdelete'), o.uri);
    for (let id = 1; id <= 6; id++) c.publish(o.topic, { id, qty: id * 10 });
    await c.flush();
    const results = {};
    // remaining returns the ids and keys a sow finds now.
    const remaining = async (label) => {
      const log = new QueryLog(label);
      log.queryId = await c.sow(log.handler, o.topic, undefined, { orderBy: '/id' });
      await log.until(isCommand('group_end'));
      const recs = log.of('sow');
      return { ids: recs.map((r) => r.data.id), key: Object.fromEntries(recs.map((r) => [r.data.id, r.key])) };
    };
    // deleted checks a delete's stats ack and returns it.
    const deleted = (label, m, want) => {
      check(m && m.header, `${label}: resolved with ${describe(m)}, want a Message`);
      const h = m.header;
      const got = {
        c: h.command(), a: h.ackType(), status: h.status(), reason: h.reason(),
        records_deleted: h.recordsDeleted(), matches: h.matches(), topic_matches: h.topicMatches(),
      };
      results[label] = got;
      emit('deleted', Object.assign({ label }, got));
      for (const [k, v] of Object.entries(want)) {
        check(got[k] === v, `${label}: ack ${JSON.stringify(got)}, want ${k} ${JSON.stringify(v)}`);
      }
      return got;
    };
    const ok = { c: 'ack', a: 'stats', status: 'success' };

    deleted('filter', await c.sowDelete(o.topic, '/qty > 40'), Object.assign({ records_deleted: 2, matches: 2, topic_matches: 6 }, ok));
    const left = await remaining('after_filter');
    check(same(left.ids, [1, 2, 3, 4]), `after sowDelete('/qty > 40'): ids ${JSON.stringify(left.ids)}, want [1,2,3,4]`);

    deleted('keys', await c.sowDeleteByKeys(o.topic, `${left.key[1]},${left.key[2]}`), Object.assign({ records_deleted: 2 }, ok));
    const left2 = await remaining('after_keys');
    check(same(left2.ids, [3, 4]), `after sowDeleteByKeys(1,2): ids ${JSON.stringify(left2.ids)}, want [3,4]`);

    // The data names the record by its key field; the other fields differ.
    deleted('data', await c.sowDeleteByData(o.topic, { id: 3, qty: 0 }), Object.assign({ records_deleted: 1 }, ok));
    const left3 = await remaining('after_data');
    check(same(left3.ids, [4]) && left3.key[4] === left.key[4], `after sowDeleteByData(id 3): ${JSON.stringify(left3)}, want only id 4 under key ${left.key[4]}`);

    // Deleting keys that are gone deletes nothing; 1=1 empties the topic.
    deleted('gone_keys', await c.sowDeleteByKeys(o.topic, `${left.key[1]},${left.key[3]}`), Object.assign({ records_deleted: 0 }, ok));
    deleted('all', await c.sowDelete(o.topic, '1=1'), Object.assign({ records_deleted: 1, matches: 1, topic_matches: 1 }, ok));
    const left4 = await remaining('after_all');
    check(left4.ids.length === 0, `after sowDelete('1=1'): ids ${JSON.stringify(left4.ids)}`);

    const fail = deleted('not_sow', await c.sowDelete(`${o.topic}-plain`, '1=1'), { c: 'ack', a: 'stats', status: 'failure' });
    check(fail.reason, `failure ack without a reason: ${JSON.stringify(fail)}`);
    await c.disconnect();
    return { results };
  },

  // sowbulk: a sowAndSubscribe over --count records (batchSize 7) while a
  // publisher updates some of them and publishes to another topic that the
  // same client also subscribes to. On WebSocket a batch is many frames and
  // the client's state machine counts them, so a delivery written inside a
  // batch would corrupt the result or raise a client error (997, which ends
  // the run). Checked: every record exactly once in the snapshot, the
  // batches of 7, no live message before group_end, and per key the
  // versions seen (snapshot, then live) are a gapless, duplicate-free tail
  // of the versions published; the other subscription gets all its
  // messages in order.
  async sowbulk(o) {
    const n = Math.max(o.count, 10);
    const updates = 400;
    const hot = 37; // updates go to ids 0..hot-1, several each
    const pub = await connect(newClient('js-bulk-pub'), o.uri);
    const sub = newClient('js-bulk-sub');
    const batches = watchBatches(sub);
    await connect(sub, o.uri);
    const published = new Map(); // id -> versions in publish order
    const put = (id, v, extra) => {
      pub.publish(o.topic, Object.assign({ id, v }, extra));
      if (!published.has(id)) published.set(id, []);
      published.get(id).push(v);
    };
    for (let id = 0; id < n; id++) put(id, 0, { pad: payload(40) });
    await pub.flush();
    const noiseTopic = `${o.topic}-noise`;
    const noise = new Inbox('noise');
    await sub.subscribe(noise.handler, noiseTopic);

    // Half the updates are sent before the query and half after, so they
    // are likely to meet it in the broker.
    const log = new QueryLog('bulk');
    let started;
    for (let u = 1; u <= updates; u++) {
      if (u === updates / 2) started = sub.sowAndSubscribe(log.handler, o.topic, undefined, { batchSize: 7 });
      pub.publish(noiseTopic, { u });
      put(u % hot, u);
    }
    put(n, 'end', { end: true });
    log.queryId = await started;
    await log.until((e) => (e.c === 'p' || e.c === 'sow') && e.data.end === true);
    await noise.wait(updates);

    const shape = log.shape();
    const endAt = shape.indexOf('group_end');
    check(shape[0] === 'group_begin' && endAt > 0, `handler got ${JSON.stringify(shape.slice(0, 3))}…, want group_begin first and a group_end`);
    check(shape.slice(0, endAt).every((c) => c !== 'p'), 'a live message before group_end');
    check(shape.slice(endAt + 1).every((c) => c === 'p'), `after group_end: ${JSON.stringify(shape.slice(endAt + 1, endAt + 5))}…`);
    const snap = log.of('sow');
    const snapIds = new Set(snap.map((r) => r.data.id));
    check(snapIds.size === snap.length, `snapshot of ${snap.length} records holds ${snapIds.size} ids`);
    for (let id = 0; id < n; id++) check(snapIds.has(id), `snapshot lacks record ${id}`);
    const bs = batches(log.queryId);
    check(bs.reduce((a, b) => a + b, 0) === snap.length && bs.slice(0, -1).every((b) => b === 7) && bs[bs.length - 1] <= 7,
      `batches ${JSON.stringify(bs)} for ${snap.length} records, want 7 each but the last`);
    const seen = new Map();
    for (const e of log.events) {
      if (e.c !== 'sow' && e.c !== 'p') continue;
      if (!seen.has(e.data.id)) seen.set(e.data.id, []);
      seen.get(e.data.id).push(e.data.v);
    }
    for (const [id, versions] of published) {
      const got = seen.get(id) || [];
      const tail = versions.slice(versions.length - got.length);
      check(got.length > 0 && same(got, tail), `record ${id}: saw versions ${JSON.stringify(got)}, published ${JSON.stringify(versions)}: want a tail, each once`);
    }
    check(same(noise.messages.map((m) => m.data.u), Array.from({ length: updates }, (_, i) => i + 1)), 'the other subscription missed or reordered messages');
    await pub.disconnect();
    await sub.disconnect();
    return { records: snap.length, batches: bs.length, live: log.of('p').length };
  },

  // sowoof: out-of-focus notices through the official client. On --topic
  // (a SOW topic keyed by /id) two subscriptions of one client with the
  // same filter, one with options 'oof' and one without, watch another
  // client's publishes and deletes: an update that leaves the filter gives
  // oof "match" with the new record, a sow_delete oof "deleted" with the
  // record as it was, both under the key the record had in the snapshot; a
  // record coming back is an ordinary delivery; records the subscription
  // never took give nothing. On --topic + "-exp" (a SOW topic keyed by /id
  // with expiration enabled) a publish with expiration 1 s gives oof
  // "expired" with the record about a second later, a record outside the
  // filter or without expiration gives nothing. Then both subscriptions are
  // replaced (same sub id, a new filter, 'replace,oof' and 'replace'): the
  // oof one gets oof "match" for the records that left its scope, then a
  // group with only the records newly in it; the other the same group
  // without notices. Every handler's events are checked one by one; the
  // subscriptions without oof must never see an "oof" frame (checked on
  // the raw frames too).
  async sowoof(o) {
    const expTopic = `${o.topic}-exp`;
    const pub = newClient('js-oof-pub');
    const sentE = []; // the "e" of every publish header the publisher sent
    pub.transportFilter((data, outgoing) => {
      if (!outgoing || typeof data !== 'string' || data[0] !== '{') return;
      let h;
      try { h = JSON.parse(data); } catch (_) { return; }
      if (h.c === 'publish') sentE.push(h.e);
    });
    await connect(pub, o.uri);
    const sub = newClient('js-oof-sub');
    const rawOOF = []; // every oof header that reached the subscriber
    sub.transportFilter((data, outgoing) => {
      const text = !outgoing && data && data.data;
      if (typeof text !== 'string' || text[0] !== '{') return;
      let h;
      try { h = JSON.parse(text); } catch (_) { return; }
      if (h.c === 'oof') rawOOF.push(h);
    });
    const strays = [];
    sub.lastChanceMessageHandler((m) => strays.push(m));
    await connect(sub, o.uri);

    [{ id: 1, qty: 150 }, { id: 2, qty: 200 }, { id: 3, qty: 300 }, { id: 4, qty: 50 }].forEach((r) => pub.publish(o.topic, r));
    await pub.flush();
    const flt = '/qty > 100';
    const oof = new QueryLog('oof');
    oof.queryId = await sub.sowAndSubscribe(oof.handler, o.topic, flt, { options: 'oof', orderBy: '/id' });
    const plain = new QueryLog('plain');
    plain.queryId = await sub.sowAndSubscribe(plain.handler, o.topic, flt, { orderBy: '/id' });
    await oof.until(isCommand('group_end'));
    await plain.until(isCommand('group_end'));
    const key = {}; // id -> key from the snapshot
    for (const log of [oof, plain]) {
      const snap = log.of('sow');
      check(same(snap.map((r) => r.data), [{ id: 1, qty: 150 }, { id: 2, qty: 200 }, { id: 3, qty: 300 }]),
        `${log.label}: snapshot ${JSON.stringify(snap.map((r) => r.data))}, want ids 1, 2, 3 as published`);
      snap.forEach((r) => {
        check(typeof r.key === 'string' && r.key !== '', `${log.label}: snapshot record ${r.data.id} has key ${JSON.stringify(r.key)}`);
        if (key[r.data.id] === undefined) key[r.data.id] = r.key;
        check(key[r.data.id] === r.key, `record ${r.data.id}: key ${r.key} in ${log.label}, ${key[r.data.id]} before`);
      });
    }

    // expect checks a log's events from index from on, one by one: want is
    // a list of [command, id, data, reason?] (data null: not checked).
    const expect = (log, from, want, topic) => {
      const got = log.events.slice(from);
      const brief = (e) => (e.c === 'oof' ? `oof:${e.reason}:${JSON.stringify(e.data)}` : `${e.c}:${JSON.stringify(e.data)}`);
      check(got.length === want.length, `${log.label}: got ${JSON.stringify(got.map(brief))}, want ${want.length} events ${JSON.stringify(want)}`);
      want.forEach(([c, id, data, reason], i) => {
        const e = got[i];
        const at = `${log.label} event ${from + i} ${brief(e)}`;
        check(e.c === c, `${at}: command ${e.c}, want ${c}`);
        if (c === 'group_begin' || c === 'group_end') return;
        check(same(e.data, data), `${at}: data ${JSON.stringify(e.data)}, want ${JSON.stringify(data)}`);
        check(e.topic === topic, `${at}: topic ${e.topic}, want ${topic}`);
        // A record of a group carries the query id; a notice names only
        // the subscription that asked for it; a publish both subscriptions
        // take comes once, naming both.
        if (c === 'sow') check(e.query_id === log.queryId, `${at}: query_id ${e.query_id}, want ${log.queryId}`);
        else if (c === 'oof') check(e.sids === log.queryId, `${at}: sids ${e.sids}, want ${log.queryId} only`);
        else check(typeof e.sids === 'string' && e.sids.split(',').includes(log.queryId), `${at}: sids ${e.sids}, want ${log.queryId} among them`);
        check(typeof e.key === 'string' && e.key !== '', `${at}: key ${JSON.stringify(e.key)}`);
        if (key[id] === undefined) key[id] = e.key;
        check(e.key === key[id], `${at}: key ${e.key}, record ${id} has key ${key[id]}`);
        if (c === 'oof') check(e.reason === reason, `${at}: reason ${JSON.stringify(e.reason)}, want ${reason}`);
        else check(e.reason === undefined, `${at}: reason ${JSON.stringify(e.reason)} on a ${c}`);
      });
    };
    // Sub ids are not shared: a notice names only the oof subscription.
    const noOOFFor = (ids) => rawOOF.forEach((h) => h.sids.split(',').forEach((sid) => check(!ids.includes(sid), `oof frame ${JSON.stringify(h)} for ${sid}, a subscription without oof`)));

    // The live part on --topic.
    const liveFrom = oof.events.length;
    const plainFrom = plain.events.length;
    pub.publish(o.topic, { id: 1, qty: 20 }); // leaves the filter
    pub.publish(o.topic, { id: 2, qty: 250 }); // stays in
    const del3 = await pub.sowDelete(o.topic, '/id = 3'); // in scope: deleted
    check(del3.header.recordsDeleted() === 1, `sowDelete(/id = 3) deleted ${del3.header.recordsDeleted()}`);
    const del4 = await pub.sowDelete(o.topic, '/id = 4'); // never in scope
    check(del4.header.recordsDeleted() === 1, `sowDelete(/id = 4) deleted ${del4.header.recordsDeleted()}`);
    pub.publish(o.topic, { id: 4, qty: 40 }); // new, out of scope
    pub.publish(o.topic, { id: 4, qty: 45 }); // out of scope before and after
    pub.publish(o.topic, { id: 1, qty: 500 }); // back in
    pub.publish(o.topic, { id: 9, qty: 999, end: 1 }); // sentinel
    const isEnd = (v) => (e) => e.c === 'p' && e.data.end === v;
    await oof.until(isEnd(1));
    await plain.until(isEnd(1));
    expect(oof, liveFrom, [
      ['oof', 1, { id: 1, qty: 20 }, 'match'],
      ['p', 2, { id: 2, qty: 250 }],
      ['oof', 3, { id: 3, qty: 300 }, 'deleted'],
      ['p', 1, { id: 1, qty: 500 }],
      ['p', 9, { id: 9, qty: 999, end: 1 }],
    ], o.topic);
    expect(plain, plainFrom, [
      ['p', 2, { id: 2, qty: 250 }],
      ['p', 1, { id: 1, qty: 500 }],
      ['p', 9, { id: 9, qty: 999, end: 1 }],
    ], o.topic);
    check(key[4] === undefined, 'record 4 reached a subscription');

    // Expiration on expTopic: ids 1 (1 s, in scope), 2 (no expiration, in
    // scope) and 3 (1 s, outside the filter).
    const expOOF = new QueryLog('exp_oof');
    expOOF.queryId = await sub.sowAndSubscribe(expOOF.handler, expTopic, '/qty > 0', { options: 'oof' });
    const expPlain = new QueryLog('exp_plain');
    expPlain.queryId = await sub.sowAndSubscribe(expPlain.handler, expTopic, '/qty > 0');
    await expOOF.until(isCommand('group_end'));
    await expPlain.until(isCommand('group_end'));
    const eFrom = sentE.length;
    const publishedAt = Date.now();
    pub.publish(expTopic, { id: 1, qty: 7 }, { expiration: 1 });
    pub.publish(expTopic, { id: 2, qty: 8 });
    pub.publish(expTopic, { id: 3, qty: -1 }, { expiration: 1 });
    check(same(sentE.slice(eFrom), [1, undefined, 1]), `publish headers carried e ${JSON.stringify(sentE.slice(eFrom))}, want [1, none, 1]`);
    await expOOF.until(isCommand('oof'));
    const expiredAfter = Date.now() - publishedAt;
    // The record lives a second from when the broker took the publish,
    // which is after publishedAt; the broker looks every quarter second.
    check(expiredAfter >= 980 && expiredAfter <= 5000, `oof expired ${expiredAfter} ms after the publish, want 1 s to a few s`);
    // Record 3 expires at the same time; a sow shows when it has gone, and
    // any notice for it would have come before the sentinel published then.
    const expLeft = async () => {
      const log = new QueryLog('exp_left');
      log.queryId = await sub.sow(log.handler, expTopic, undefined, { orderBy: '/id' });
      await log.until(isCommand('group_end'));
      return log.of('sow').map((r) => r.data.id);
    };
    let left = await expLeft();
    for (let i = 0; i < 40 && !same(left, [2]); i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await expLeft();
    }
    check(same(left, [2]), `${expTopic} holds ids ${JSON.stringify(left)} after the expiry, want [2]`);
    pub.publish(expTopic, { id: 9, qty: 9, end: 2 });
    await expOOF.until(isEnd(2));
    await expPlain.until(isEnd(2));
    expect(expOOF, 0, [
      ['group_begin'], ['group_end'],
      ['p', 'e1', { id: 1, qty: 7 }],
      ['p', 'e2', { id: 2, qty: 8 }],
      ['oof', 'e1', { id: 1, qty: 7 }, 'expired'],
      ['p', 'e9', { id: 9, qty: 9, end: 2 }],
    ], expTopic);
    expect(expPlain, 0, [
      ['group_begin'], ['group_end'],
      ['p', 'e1', { id: 1, qty: 7 }],
      ['p', 'e2', { id: 2, qty: 8 }],
      ['p', 'e9', { id: 9, qty: 9, end: 2 }],
    ], expTopic);

    // Replace on --topic. Now: 1 qty 500, 2 qty 250, 4 qty 45, 9 qty 999;
    // add 5 (120) and 6 (40). The old filter takes 1, 2, 5, 9; the new one
    // takes 4, 5, 6, 9: 1 and 2 leave, 4 and 6 are newly in scope.
    const addFrom = [oof.events.length, plain.events.length];
    pub.publish(o.topic, { id: 5, qty: 120 });
    pub.publish(o.topic, { id: 6, qty: 40 });
    pub.publish(o.topic, { id: 9, qty: 999, end: 3 });
    await oof.until(isEnd(3));
    await plain.until(isEnd(3));
    const added = [['p', 5, { id: 5, qty: 120 }], ['p', 9, { id: 9, qty: 999, end: 3 }]];
    expect(oof, addFrom[0], added, o.topic);
    expect(plain, addFrom[1], added, o.topic);
    const flt2 = '/qty < 200 OR /qty > 900';
    const replacedAt = [oof.events.length, plain.events.length];
    const oof2 = new QueryLog('oof_replaced');
    oof2.queryId = await sub.sowAndSubscribe(oof2.handler, o.topic, flt2, { subId: oof.queryId, options: 'replace,oof', orderBy: '/id' });
    const plain2 = new QueryLog('plain_replaced');
    plain2.queryId = await sub.sowAndSubscribe(plain2.handler, o.topic, flt2, { subId: plain.queryId, options: 'replace', orderBy: '/id' });
    check(oof2.queryId === oof.queryId && plain2.queryId === plain.queryId,
      `replacements resolved with ids ${oof2.queryId}, ${plain2.queryId}, want ${oof.queryId}, ${plain.queryId}`);
    await oof2.until(isCommand('group_end'));
    await plain2.until(isCommand('group_end'));
    // The notices come before the group; the broker sends them in no set
    // order, so they are checked by id.
    const n = oof2.events.findIndex((e) => e.c !== 'oof');
    const notices = oof2.events.slice(0, n).sort((a, b) => a.data.id - b.data.id);
    oof2.events.splice(0, n, ...notices);
    const group = [['group_begin'], ['sow', 4, { id: 4, qty: 45 }], ['sow', 6, { id: 6, qty: 40 }], ['group_end']];
    pub.publish(o.topic, { id: 5, qty: 300 }); // leaves the new filter
    pub.publish(o.topic, { id: 2, qty: 150 }); // back in under the new one
    pub.publish(o.topic, { id: 1, qty: 600 }); // out under the new one: nothing
    pub.publish(o.topic, { id: 9, qty: 999, end: 4 });
    await oof2.until(isEnd(4));
    await plain2.until(isEnd(4));
    expect(oof2, 0, [
      ['oof', 1, { id: 1, qty: 500 }, 'match'],
      ['oof', 2, { id: 2, qty: 250 }, 'match'],
      ...group,
      ['oof', 5, { id: 5, qty: 300 }, 'match'],
      ['p', 2, { id: 2, qty: 150 }],
      ['p', 9, { id: 9, qty: 999, end: 4 }],
    ], o.topic);
    expect(plain2, 0, [
      ...group,
      ['p', 2, { id: 2, qty: 150 }],
      ['p', 9, { id: 9, qty: 999, end: 4 }],
    ], o.topic);
    // The replaced handlers got nothing after the replacement.
    check(same([oof.events.length, plain.events.length], replacedAt), `the replaced handlers got ${JSON.stringify(oof.events.slice(replacedAt[0]).concat(plain.events.slice(replacedAt[1])))}`);
    noOOFFor([plain.queryId, expPlain.queryId]);
    check(rawOOF.length === 6, `${rawOOF.length} oof frames, want 6`);
    rawOOF.forEach((h) => check(typeof h.l === 'number' && h.l > 0, `oof frame ${JSON.stringify(h)} without a body length`));
    check(strays.length === 0, `deliveries for no live subscription: ${JSON.stringify(strays)}`);
    await pub.disconnect();
    await sub.disconnect();
    return { keys: key, oof_after_ms: expiredAfter, notices: rawOOF.map((h) => ({ reason: h.reason, k: h.k, t: h.t })) };
  },

  // deltapublish: deltaPublish() on --topic (a SOW topic keyed by /id)
  // merges into the stored record (semantics §3.7, with its worked
  // example): a sow() then shows the merged record, a plain subscriber
  // receives the merged record, and a filter that only the merged record
  // satisfies (the delta alone lacks /px/bid, the stored record has the old
  // /st) takes it. On --topic + "-plain" (no SOW) a deltaPublish is a plain
  // publish: the delta arrives as sent. The exact bodies the broker sent
  // are reported from the raw frames for the Go test to compare.
  async deltapublish(o) {
    const plainTopic = `${o.topic}-plain`;
    const pub = newClient('js-delta-pub');
    const sent = []; // the command of every header the publisher sent
    pub.transportFilter((data, outgoing) => {
      if (!outgoing || typeof data !== 'string' || data[0] !== '{') return;
      let h;
      try { h = JSON.parse(data); } catch (_) { return; }
      if (h.c !== undefined) sent.push(h.c); // bodies are JSON objects too
    });
    await connect(pub, o.uri);
    const sub = newClient('js-delta-sub');
    const raw = rawDeliveries(sub);
    await connect(sub, o.uri);
    const all = new Inbox('all');
    await sub.subscribe(all.handler, o.topic);
    const mergedOnly = new Inbox('merged_only');
    await sub.subscribe(mergedOnly.handler, o.topic, "/st = 'open' AND /px/bid = 9");
    const plain = new Inbox('plain');
    await sub.subscribe(plain.handler, plainTopic);

    pub.publish(o.topic, { id: 5, st: 'new', px: { bid: 9, ask: 11 }, legs: [1, 2], memo: 'x' });
    pub.deltaPublish(o.topic, { id: 5, st: 'open', px: { ask: 12 }, legs: [3], memo: null, venue: 'X1' });
    pub.deltaPublish(plainTopic, { id: 5, memo: null });
    pub.publish(o.topic, { id: 6, st: 'open', px: { bid: 9 }, end: 1 }); // sentinel both take
    await pub.flush();
    check(same(sent.filter((c) => c !== 'logon' && c !== 'flush'), ['publish', 'delta_publish', 'delta_publish', 'publish']),
      `publisher sent ${JSON.stringify(sent)}`);
    const log = new QueryLog('sow');
    log.queryId = await pub.sow(log.handler, o.topic, '/id = 5');
    await log.until(isCommand('group_end'));
    const recs = log.of('sow');
    check(recs.length === 1, `sow(/id = 5) returned ${recs.length} records: ${JSON.stringify(recs.map((r) => r.data))}`);
    // The sentinel is the last publish and comes in the same frame to
    // both subscriptions on --topic: once the unfiltered one has it, every
    // earlier delivery of this connection has arrived too (the Go test
    // checks what each took).
    await all.wait(3);
    const text = (inbox) => inbox.messages.map((m) => JSON.stringify(m.data));
    await pub.disconnect();
    await sub.disconnect();
    return {
      sow: JSON.stringify(recs[0].data),
      sow_key: recs[0].key,
      all: text(all),
      merged_only: text(mergedOnly),
      plain: text(plain),
      raw: raw.map((d) => ({ t: d.t, k: d.k, body: d.body })),
    };
  },

  // deltasubscribe: deltaSubscribe() and sowAndDeltaSubscribe() on --topic
  // (a SOW topic keyed by /id; semantics §3.10). Three subscribers, each
  // on its own connection: deltaSubscribe, deltaSubscribe with options
  // 'no_empties', and later sowAndDeltaSubscribe. Another client publishes
  // a new record, updates of it (two fields, nothing, one field through
  // deltaPublish) and a second record; then, after the sowAndDeltaSubscribe
  // snapshot, one more update of each. Every handler's events are reported
  // (data as JSON text, key, and the raw body of each delivery) for the Go
  // test, which holds the expectations.
  async deltasubscribe(o) {
    const pub = await connect(newClient('js-dsub-pub'), o.uri);
    const subscriber = async (name) => {
      const c = newClient(name);
      const raw = rawDeliveries(c);
      await connect(c, o.uri);
      return { c, raw };
    };
    const ds = await subscriber('js-dsub');
    const ne = await subscriber('js-dsub-noempties');
    const dsLog = new QueryLog('delta');
    dsLog.queryId = await ds.c.deltaSubscribe(dsLog.handler, o.topic);
    const neLog = new QueryLog('no_empties');
    neLog.queryId = await ne.c.deltaSubscribe(neLog.handler, o.topic, undefined, { options: 'no_empties' });

    pub.publish(o.topic, { id: 1, qty: 5, px: { bid: 1, ask: 2 }, st: 'new' }); // new record
    pub.publish(o.topic, { id: 1, qty: 7, px: { bid: 1, ask: 3 }, st: 'new' }); // qty, px/ask
    pub.publish(o.topic, { id: 1, qty: 7, px: { bid: 1, ask: 3 }, st: 'new' }); // nothing
    pub.deltaPublish(o.topic, { id: 1, st: 'open' }); // st
    pub.publish(o.topic, { id: 2, qty: 1, end: 1 }); // new record, the sentinel
    const isEnd = (v) => (e) => e.c === 'p' && e.data.end === v;
    await dsLog.until(isEnd(1));
    await neLog.until(isEnd(1));

    const sads = await subscriber('js-sads');
    const sLog = new QueryLog('sow_and_delta');
    sLog.queryId = await sads.c.sowAndDeltaSubscribe(sLog.handler, o.topic, undefined, { orderBy: '/id' });
    await sLog.until(isCommand('group_end'));
    pub.publish(o.topic, { id: 1, qty: 7, px: { bid: 1, ask: 3 }, st: 'done' }); // st
    pub.publish(o.topic, { id: 2, qty: 1, end: 2 }); // end
    for (const log of [dsLog, neLog, sLog]) await log.until(isEnd(2));
    await pub.flush();

    const report = (log, raw) => ({
      events: log.events.map((e) => ({ c: e.c, key: e.key, data: e.data === undefined ? undefined : JSON.stringify(e.data) })),
      raw: raw.map((d) => d.body),
    });
    const out = { delta: report(dsLog, ds.raw), no_empties: report(neLog, ne.raw), sow_and_delta: report(sLog, sads.raw) };
    for (const c of [pub, ds.c, ne.c, sads.c]) await c.disconnect();
    return out;
  },

  // options: subscriptions with options the broker refuses (semantics §4:
  // not implemented yet, or unknown) are rejected promises whose Error
  // names the reason; the connection stays usable, shown by a subscription
  // with accepted options that receives a message. The Go test compares
  // the reasons. --topic must be a SOW topic (sowAndSubscribe is tried).
  async options(o) {
    const c = await connect(newClient('js-options'), o.uri);
    const cases = [
      ['subscribe', 'conflation=1s'],
      ['subscribe', 'select=[-/a,+/b],skip_n=5'], // the splitter keeps the list whole
      ['subscribe', 'oof,pause'],
      ['deltaSubscribe', 'no_empties,rate=2x'],
      ['sowAndSubscribe', 'conflation=100ms,conflation_key=[/id]'],
      ['subscribe', 'frobnicate'],
      ['subscribe', 'no_empties'], // a delta_subscribe option only
      ['subscribe', 'replace=yes'],
    ];
    const reasons = {};
    for (const [method, options] of cases) {
      let rejected = null;
      try {
        const id = await c[method](() => {}, o.topic, undefined, { options });
        emit('unexpected_success', { method, options, id });
      } catch (err) {
        rejected = err;
      }
      check(rejected !== null, `${method} with options ${JSON.stringify(options)} resolved; want a rejection`);
      check(rejected instanceof Error, `${method} with options ${JSON.stringify(options)} rejected with ${describe(rejected)}, want an Error`);
      reasons[`${method} ${options}`] = rejected.message;
      emit('rejected', { method, options, reason: rejected.message });
    }
    const inbox = new Inbox('accepted');
    await c.subscribe(inbox.handler, o.topic, undefined, { options: 'timestamp,oof,send_keys' });
    c.publish(o.topic, { id: 1, after: 'refusals' });
    const [m] = await inbox.wait(1);
    check(m.data.after === 'refusals', `after the refusals got ${JSON.stringify(m.data)}`);
    await c.disconnect();
    return { reasons };
  },

  // bookmark: bookmark subscriptions on a broker without a transaction log
  // are entered live (semantics §7.3). Classic client (no bookmark store):
  // one subscription per bookmark form; a message arrives; disconnect(); a
  // message published meanwhile; connect() and the same subscriptions again
  // with the same bookmarks; a new message arrives, the one published while
  // away does not (nothing to replay). Then a memory-backed client
  // (bookmark store, subscription manager, reconnectDelay) on --uri with the
  // user "js-bm-drop": it prints "drop_me", the Go test disconnects that
  // user from the broker side, and the client reconnects and resubscribes
  // by itself with the bookmark its store chose; its next message arrives.
  // The bookmarks every subscribe carried are reported.
  async bookmark(o) {
    const pub = await connect(newClient('js-bm-pub'), o.uri);
    const c = newClient('js-bm-sub');
    const subs = []; // {bm, o, a} of every subscribe the client sent
    const subscribeLog = (client) => client.transportFilter((data, outgoing) => {
      if (!outgoing || typeof data !== 'string' || data[0] !== '{') return;
      let h;
      try { h = JSON.parse(data); } catch (_) { return; }
      if (h.c === 'subscribe') subs.push({ client: client.name(), bm: h.bm, a: h.a, sub_id: h.sub_id });
    });
    subscribeLog(c);
    await connect(c, o.uri);
    const bookmarks = ['0', '0|1|', '1234567|8|', '1234567|8|,7654321|9|', '20240102T030405Z'];
    const subscribeAll = async () => {
      const inboxes = [];
      for (const bookmark of bookmarks) {
        const inbox = new Inbox(bookmark);
        await c.subscribe(inbox.handler, o.topic, undefined, { bookmark });
        inboxes.push(inbox);
      }
      return inboxes;
    };
    const first = await subscribeAll();
    pub.publish(o.topic, { n: 1 });
    for (const inbox of first) await inbox.wait(1);
    await c.disconnect();
    pub.publish(o.topic, { n: 2 }); // no subscriber: lost without a journal
    await pub.flush();
    await connect(c, o.uri);
    const second = await subscribeAll();
    pub.publish(o.topic, { n: 3 });
    for (const inbox of second) await inbox.wait(1);
    const ns = (inboxes) => inboxes.map((i) => i.messages.map((m) => m.data.n));
    const firstGot = ns(first);
    const secondGot = ns(second); // they take the messages below too

    // The memory-backed client, dropped by the broker.
    const user = 'js-bm-drop';
    const { client: ha, errors: haErrors, states, resubscribed } = memoryBacked('js-bm-ha');
    subscribeLog(ha);
    await connect(ha, o.uri.replace('://', `://${user}:pw@`));
    const haBookmarks = ['0', '1234567|8|'];
    const haInboxes = [];
    for (const bookmark of haBookmarks) {
      const inbox = new Inbox(`ha ${bookmark}`);
      await ha.subscribe(inbox.handler, o.topic, undefined, { bookmark });
      haInboxes.push(inbox);
    }
    pub.publish(o.topic, { n: 4 });
    for (const inbox of haInboxes) await inbox.wait(1);
    const before = subs.length;
    const back = resubscribed();
    emit('drop_me', { user });
    await back;
    await ha.flush(); // the resubscriptions were sent before it: now live
    pub.publish(o.topic, { n: 5 });
    for (const inbox of haInboxes) await inbox.wait(2);
    await pub.flush();
    await ha.disconnect();
    await c.disconnect();
    await pub.disconnect();
    return {
      bookmarks, first: firstGot, second: secondGot, ha_bookmarks: haBookmarks, ha: ns(haInboxes),
      subscribes: subs, resubscribes: subs.slice(before), states, ha_errors: haErrors,
    };
  },

  // replay: bookmark subscriptions across a restart of a broker with a
  // transaction log. The Go test has published {n:1}..{n:--count} to
  // --topic. A classic client subscribes from EPOCH ('0') and a
  // memory-backed one (bookmark store, reconnectDelay) with MOST_RECENT
  // ('recent', resolved by its store; its handler discards each message
  // from the store once processed, as an application does); both must get
  // 1..count. The classic client disconnects and the driver prints
  // "restart_me" with the bookmark of its last message. The Go test
  // restarts the broker on the same journal and address and publishes
  // more; the classic client connects again (retrying while the broker is
  // down) and subscribes from that bookmark, the memory-backed one
  // reconnects and resubscribes by itself. Then "resumed"; the Go test
  // publishes the rest, up to count + --after. Each client must see
  // count+1..count+after after the restart, each once, in order; after
  // SETTLE_MS of quiet, the handlers' messages, the bookmarks on the raw
  // deliveries (before and after the restart) and the bookmarks of every
  // subscribe are reported.
  async replay(o) {
    const total = o.count + o.after;
    const subs = []; // {client, bm, a} of every subscribe sent
    const raw = {}; // client name -> phase -> bookmark of every raw delivery
    let phase = 'before'; // of the restart
    const tap = (client) => client.transportFilter((data, outgoing) => {
      const text = outgoing ? data : data && data.data;
      if (typeof text !== 'string' || text[0] !== '{') return;
      let h;
      try { h = JSON.parse(text); } catch (_) { return; }
      if (outgoing && h.c === 'subscribe') subs.push({ client: client.name(), bm: h.bm, a: h.a });
      if (outgoing || (h.c !== 'p' && h.c !== 'publish')) return;
      const byPhase = raw[client.name()] = raw[client.name()] || { before: [], after: [] };
      byPhase[phase].push(h.bm);
    });
    const ns = (inbox) => inbox.messages.map((m) => m.data.n);

    const classicName = 'js-replay';
    let classic = newClient(classicName);
    tap(classic);
    await connect(classic, o.uri);
    const before = new Inbox('classic before');
    const bms = [];
    await classic.subscribe((m) => { bms.push(m.header.bookmark()); before.push(m); }, o.topic, undefined, { bookmark: Client.Bookmarks.EPOCH });

    const { client: ha, errors: haErrors, states, resubscribed } = memoryBacked('js-replay-ha');
    tap(ha);
    await connect(ha, o.uri);
    const haInbox = new Inbox('memory-backed');
    await ha.subscribe((m) => { haInbox.push(m); ha.bookmarkStore().discard(m); }, o.topic, undefined, { bookmark: Client.Bookmarks.MOST_RECENT });

    await before.wait(o.count);
    await haInbox.wait(o.count);
    const last = bms[bms.length - 1];
    await classic.disconnect();
    const back = resubscribed();
    phase = 'after';
    emit('restart_me', { bookmark: last });

    // The broker is going down and up: connect until a logon succeeds. An
    // attempt whose socket the stopping broker closes before the logon ack
    // can leave connect() pending for ever, so each attempt is given
    // CONNECT_ATTEMPT_MS.
    let attempts = 0;
    for (;;) {
      attempts++;
      const c = new Client(classicName);
      tap(c);
      let timer;
      const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('connect attempt timed out')), CONNECT_ATTEMPT_MS);
      });
      try {
        await Promise.race([c.connect(o.uri), expired]);
        classic = c;
        break;
      } catch (_) {
        c.disconnect().catch(() => {});
        await new Promise((r) => setTimeout(r, RECONNECT_DELAY_MS));
      } finally {
        clearTimeout(timer);
      }
    }
    const after = new Inbox('classic after');
    await classic.subscribe(after.handler, o.topic, undefined, { bookmark: last });
    await back;
    await ha.flush();
    emit('resumed', { attempts });

    await after.wait(o.after);
    await haInbox.wait(total);
    await classic.flush();
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    await classic.disconnect();
    await ha.disconnect();
    return {
      before: ns(before), bookmark: last, after: ns(after), ha: ns(haInbox),
      raw, subscribes: subs, states, ha_errors: haErrors, attempts,
    };
  },

  // publishstore: a client with a MemoryPublishStore on --topic-store (a
  // plain topic). It publishes 1..3 and waits for their persisted acks
  // (failedWriteHandler never called, the store empties); publishes 4..6
  // and disconnects in the same tick, so the broker gets them but the
  // client never reads their acks; then connects again. Its store is one
  // that ignores the logon ack's sequence once (as a store that could not
  // learn it would), so the client replays 4..6, which the broker has
  // already processed: it must drop them as duplicates and still
  // acknowledge them as persisted. A subscriber sees 1..7 once each (7 is
  // the sentinel). The logon acks' "s" (raw text) and the sequences sent
  // are reported.
  async publishstore(o) {
    const topic = `${o.topic}-store`;
    const sub = await connect(newClient('js-store-sub'), o.uri);
    const inbox = new Inbox('store');
    await sub.subscribe(inbox.handler, topic);
    class IgnoresLogonOnce extends MemoryPublishStore {
      discardUpTo(s) {
        if (this.ignoreNext) {
          this.ignoreNext = false;
          this.ignored = s.toString();
          return undefined;
        }
        return super.discardUpTo(s);
      }
    }
    const store = new IgnoresLogonOnce();
    const c = newClient('js-store-pub').publishStore(store);
    const logonS = []; // "s" of each logon ack, as the raw text has it
    const sentS = []; // [n, s] of each publish sent
    const persisted = []; // "s" of each persisted ack
    let lastHeader = null;
    c.transportFilter((data, outgoing) => {
      const text = outgoing ? data : data && data.data;
      if (typeof text !== 'string') return;
      if (outgoing && lastHeader && lastHeader.c === 'publish' && text[0] === '{') {
        try { sentS.push([JSON.parse(text).n, lastHeader.s]); } catch (_) { /* not JSON */ }
        lastHeader = null;
        return;
      }
      if (text[0] !== '{') return;
      let h;
      try { h = JSON.parse(text); } catch (_) { return; }
      if (outgoing) {
        if (h.c === 'publish') lastHeader = h;
        return;
      }
      const m = /"s":(\d+),/.exec(text);
      if (h.c === 'ack' && h.a === 'processed' && h.bm !== undefined) logonS.push({ s: m && m[1], bm: h.bm });
      if (h.c === 'ack' && h.a === 'persisted') persisted.push({ s: m && m[1], status: h.status, reason: h.reason });
    });
    const failed = [];
    c.failedWriteHandler((m, reason) => failed.push({ reason }));
    await connect(c, o.uri);
    for (const n of [1, 2, 3]) c.publish(topic, { n });
    await c.flush('persisted');
    await inbox.wait(3);
    check(store.unpersistedCount() === 0, `${store.unpersistedCount()} messages unpersisted after the persisted flush`);
    for (const n of [4, 5, 6]) c.publish(topic, { n });
    const pendingAtDisconnect = store.unpersistedCount();
    await c.disconnect();
    await inbox.wait(6); // the broker took them all
    store.ignoreNext = true;
    await connect(c, o.uri);
    c.publish(topic, { n: 7 });
    await c.flush('persisted');
    await inbox.wait(7);
    await sub.flush(); // anything more for the subscriber was queued before this ack
    const got = inbox.messages.map((m) => m.data.n);
    check(store.unpersistedCount() === 0, `${store.unpersistedCount()} messages unpersisted after the replay and a persisted flush`);
    await c.disconnect();
    await sub.disconnect();
    return {
      received: got, failed_writes: failed, logons: logonS, sent: sentS, persisted,
      pending_at_disconnect: pendingAtDisconnect, ignored_logon_s: store.ignored || null,
    };
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
