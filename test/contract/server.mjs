// The contract against the real server: every example in docs/asyncapi.yaml and docs/openapi.yaml
// is sent to, or produced by, the real binary on 127.0.0.1.
//
//   node test/contract/server.mjs --binary build/ci/wolf-wisdom
//
// AsyncAPI: each client event example is sent for real (its id and position replaced by the
// connection's own) and has the effect the document describes; each server event example is what
// the server really sends in the situation the example names: schema-valid, the same members at
// every depth, and the same values where the example is not illustrative (codes, error messages,
// statuses); each close code of `x-close-codes` is provoked and its code and reason checked.
// OpenAPI: each response (path, method, status, media type, named example) is provoked and checked
// the same way, with its documented headers. A documented example that no scenario here provokes
// fails the suite, as does a scenario for an example that is no longer documented; the few that
// cannot be provoked from outside are listed in UNPROVOKABLE with the reason.
// Exit status: 0 all passed, 1 a check failed, 2 bad usage, 77 a prerequisite is missing.

import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as tcpConnect, createServer } from 'node:net';
import { existsSync, mkdtempSync, cpSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  HERE, SKIP, differences, loadAsyncApi, loadOpenApi, loadPackages, makeAjv, plainSchema,
} from './contract.mjs';

const HOST = '127.0.0.1';
const TOKEN = 'contract-test-token-0123456789';
const WAIT_MS = 10000; // the longest any single expected event may take

// ---- command line and prerequisites --------------------------------------------------------

function usage(message) {
  if (message) console.error('contract: ' + message);
  console.error('usage: node test/contract/server.mjs --binary <path to wolf-wisdom>');
  process.exit(2);
}
const argv = process.argv.slice(2);
let binary = '';
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--binary') binary = argv[++i] ?? '';
  else if (argv[i].startsWith('--binary=')) binary = argv[i].slice('--binary='.length);
  else usage('unknown argument: ' + argv[i]);
}
if (!binary) usage('--binary is required');
binary = path.resolve(binary);
if (!existsSync(binary)) usage(`${binary} does not exist`);

const { ws: wsModule } = await loadPackages(['ws']);
const WebSocket = wsModule.WebSocket ?? wsModule.default;
const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
if (!REDIS) {
  console.log('contract: SKIP: redis-server is missing (install it with: apt-get install redis-server)');
  process.exit(SKIP);
}

const asyncapi = await loadAsyncApi();
const openapi = await loadOpenApi();
assert.ok(asyncapi.document, 'docs/asyncapi.yaml parses');
const draft07 = await makeAjv('draft-07');
const draft2020 = await makeAjv('2020-12');

// ---- processes -----------------------------------------------------------------------------

const children = new Set();
process.on('exit', () => {
  for (const child of children) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
});

/** A child process whose output lines can be awaited. */
class Child {
  constructor(name, file, args) {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    this.proc = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
      children.delete(this.proc);
      resolve({ code, signal });
      for (const w of this.waiters) w.fail(new Error(`${name} exited (${code ?? signal}) while waiting for ${w.re}`));
    }));
    for (const stream of [this.proc.stdout, this.proc.stderr]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buffered += chunk;
        for (let nl; (nl = buffered.indexOf('\n')) >= 0; buffered = buffered.slice(nl + 1)) this.line(buffered.slice(0, nl));
      });
    }
  }

  line(text) {
    this.lines.push(text);
    if (process.env.CONTRACT_LOG) console.error(`[${this.name}] ${text}`);
    this.waiters = this.waiters.filter((w) => !(w.re.test(text) && (w.done(text), true)));
  }

  /** The first line matching `re` logged from now on (or from line index `from`). */
  waitForLine(re, from = this.lines.length) {
    const seen = this.lines.slice(from).find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return withTimeout(new Promise((done, fail) => this.waiters.push({ re, done, fail })),
      `${this.name}: a log line ${re}`);
  }

  async stop(signal = 'SIGTERM') {
    if (this.proc.exitCode === null && this.proc.signalCode === null) process.kill(this.proc.pid, signal);
    return this.exited;
  }
}

function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`no ${what} within ${ms} ms`)), ms); }),
  ]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, HOST, () => { const { port } = probe.address(); probe.close(() => resolve(port)); });
  });
}

/** The real binary on 127.0.0.1 and a port of its own choosing (--port 0, read back from its log). */
async function startServer(name, args) {
  const child = new Child(name, binary, ['--host', HOST, '--port', '0', '--log-level', 'info', ...args]);
  const line = await child.waitForLine(/\blistening url=/, 0);
  child.port = Number(/\bport=(\d+)/.exec(line)[1]);
  return child;
}

async function startRedis() {
  const port = await freePort();
  const child = new Child('redis', REDIS, ['--port', String(port), '--bind', HOST, '--save', '',
    '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no']);
  await child.waitForLine(/Ready to accept connections/, 0);
  child.port = port;
  return child;
}

async function startSentinel(dir, masterPort) {
  const port = await freePort();
  const file = path.join(dir, 'sentinel.conf');
  writeFileSync(file, `port ${port}\nbind ${HOST}\nprotected-mode no\ndaemonize no\ndir ${dir}\n` +
    `sentinel monitor wolfmaster ${HOST} ${masterPort} 1\n`);
  const child = new Child('sentinel', REDIS, [file, '--sentinel']);
  await child.waitForLine(/\+monitor master/, 0);
  child.port = port;
  return child;
}

// ---- HTTP, raw ----------------------------------------------------------------------------

/** Sends `text` on a new TCP connection and parses the one response the server sends before closing. */
function exchange(port, text, { head = false } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const socket = tcpConnect(port, HOST);
    const chunks = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', (e) => { if (chunks.length === 0) reject(e); }); // a reset after the answer is fine
    socket.on('close', () => {
      try { resolve(parseResponse(Buffer.concat(chunks), head)); } catch (e) { reject(e); }
    });
    socket.write(text);
  }), `answer from port ${port}`);
}

function parseResponse(bytes, head) {
  const end = bytes.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an HTTP response: ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...fields] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
  const headers = {};
  for (const f of fields) {
    const colon = f.indexOf(':');
    headers[f.slice(0, colon).trim().toLowerCase()] = f.slice(colon + 1).trim();
  }
  let body = bytes.subarray(end + 4);
  if (!head && headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status, headers, body: head ? '' : body.toString('utf8'), rawBodyLength: bytes.length - end - 4 };
}

function request(port, method, target, { headers = {}, body } = {}) {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${HOST}:${port}`, 'Connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  return exchange(port, lines.join('\r\n') + '\r\n\r\n' + (body ?? ''), { head: method === 'HEAD' });
}

const bearer = { Authorization: `Bearer ${TOKEN}` };
const getJson = async (port, target, headers = {}) =>
  JSON.parse((await request(port, 'GET', target, { headers })).body);

// ---- WebSocket ----------------------------------------------------------------------------

/** A WebSocket client (the `ws` package) whose incoming events and close can be awaited in order. */
class Client {
  static async open(port, pathname = '/ws') {
    const client = new Client(new WebSocket(`ws://${HOST}:${port}${pathname}`));
    await withTimeout(new Promise((resolve, reject) => {
      client.ws.once('open', resolve);
      client.ws.once('error', reject);
      client.ws.once('unexpected-response', (req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    }), 'WebSocket handshake');
    client.initial = await client.next();
    client.id = client.initial.payload.id;
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiting = null;
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.closed.then(() => this.waiting?.fail(new Error('the connection closed while an event was awaited')));
    ws.on('error', () => {}); // a close is reported through `closed`
    ws.on('message', (data, binary) => {
      assert.equal(binary, false, 'the server sends only text frames');
      this.inbox.push(JSON.parse(data.toString()));
      this.pump();
    });
  }

  pump() {
    if (!this.waiting) return;
    const i = this.inbox.findIndex((e) => !this.waiting.skip.includes(e.type));
    if (i < 0) return;
    const [event] = this.inbox.splice(0, i + 1).slice(-1);
    const { done } = this.waiting;
    this.waiting = null;
    done(event);
  }

  /** The next event whose type is not in `skip` (those before it are discarded). */
  next(skip = []) {
    return withTimeout(new Promise((done, fail) => { this.waiting = { done, fail, skip }; this.pump(); }),
      'WebSocket event');
  }

  send(type, payload = {}) { this.ws.send(JSON.stringify({ type, payload: { id: this.id, ...payload } })); }

  /** Everything sent before has been applied: the server answers an unknown type after it, in order. */
  async barrier() {
    this.ws.send(JSON.stringify({ type: 'barrier', payload: { id: this.id } }));
    const reply = await this.next(['wisdom_distribution']);
    assert.equal(reply.payload?.code, 'unknown_type', `no reply before the barrier's: ${JSON.stringify(reply)}`);
  }

  async subscribed() {
    this.send('connect');
    this.send('subscribe');
    assert.deepEqual(await this.next(), { type: 'subscribe_confirmation', payload: { status: 'ok' } });
    return this;
  }

  close() { this.ws.terminate(); }

  /** A closing handshake: once it is done, the server no longer counts the connection. */
  async end() {
    this.ws.close(1000);
    return withTimeout(this.closed, 'closing handshake');
  }
}

/** A handshake by hand, for what the `ws` package will not do: its raw answer, and the socket after it. */
function rawUpgrade(port) {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, HOST);
    let buffer = Buffer.alloc(0);
    const onData = (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve({ response: parseResponse(buffer.subarray(0, end + 4), true), socket, rest: buffer.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write(upgradeRequest(port));
  });
}

function upgradeRequest(port) {
  return `GET /ws HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** Reads server frames (never masked) from a raw socket until a close frame; returns its code and reason. */
function rawCloseFrame(socket, rest) {
  return withTimeout(new Promise((resolve) => {
    let buffer = rest;
    const scan = () => {
      while (buffer.length >= 2) {
        let length = buffer[1] & 0x7f;
        let offset = 2;
        if (length === 126) { if (buffer.length < 4) return; length = buffer.readUInt16BE(2); offset = 4; }
        if (buffer.length < offset + length) return;
        if ((buffer[0] & 0x0f) === 0x8) {
          const body = buffer.subarray(offset, offset + length);
          resolve({ code: body.readUInt16BE(0), reason: body.subarray(2).toString('utf8') });
          socket.destroy();
          return;
        }
        buffer = buffer.subarray(offset + length);
      }
    };
    socket.on('data', (chunk) => { buffer = Buffer.concat([buffer, chunk]); scan(); });
    scan();
  }), 'close frame');
}

// ---- the servers --------------------------------------------------------------------------

const servers = {};
let workdir;

before(async () => {
  workdir = mkdtempSync(path.join(tmpdir(), 'wolf-contract-'));
  const assets = path.join(workdir, 'assets');
  cpSync(path.resolve(HERE, '../../assets'), assets, { recursive: true });
  writeFileSync(path.join(assets, 'data.bin'), randomBytes(64));
  const deadRedis = await freePort(); // nothing listens there
  const redis = await startRedis();
  const sentinelDir = mkdtempSync(path.join(workdir, 'sentinel-'));
  const sentinel = await startSentinel(sentinelDir, redis.port);
  Object.assign(servers, {
    redis, sentinel,
    // The single node most checks use: the admin API on, an assets directory with a file of unknown type.
    main: await startServer('main', ['--interval', '200ms', '--admin-token', TOKEN, '--assets', assets]),
    // Small limits, no admin API: ping timeout, error limit, capacity; stopped last for 1001.
    limits: await startServer('limits', ['--interval', '1m', '--ping-timeout', '1s', '--max-errors', '2',
      '--max-connections', '2']),
    // Queues small enough for a client that stops reading to be a slow consumer.
    slow: await startServer('slow', ['--interval', '1m', '--max-queue', '2', '--max-message-size', '15000',
      '--admin-token', TOKEN]),
    // A node of a cluster through Sentinel, and one whose Redis never answers.
    cluster: await startServer('cluster', ['--interval', '200ms',
      '--redis', `redis+sentinel://${HOST}:${sentinel.port}/wolfmaster`]),
    lonely: await startServer('lonely', ['--interval', '200ms', '--admin-token', TOKEN,
      '--redis', `redis://${HOST}:${deadRedis}`]),
  });
  await servers.cluster.waitForLine(/\bbroker_connected\b/, 0);
});

after(async () => {
  for (const child of Object.values(servers).reverse()) await child.stop('SIGKILL');
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

// ---- AsyncAPI ------------------------------------------------------------------------------

const messages = Object.fromEntries(asyncapi.document.allMessages().all().map((m) => [m.name(), m]));
const validators = Object.fromEntries(Object.entries(messages)
  .map(([name, m]) => [name, draft07.compile(plainSchema(m.payload().json()))]));
const example = (name, exampleName) => {
  const found = messages[name].examples().all().find((e) => e.name() === exampleName);
  assert.ok(found, `asyncapi.yaml has the example ${name}/${exampleName}`);
  return found.payload();
};

/** The server's event is valid and has the example's shape, and its `fixed` values. */
function assertMatches(event, name, exampleName, fixed = ['type']) {
  const validate = validators[name];
  assert.ok(validate(event), `${name}: ${JSON.stringify(event)}: ${JSON.stringify(validate.errors)}`);
  assert.deepEqual(differences(event, example(name, exampleName), fixed), [],
    `${name}/${exampleName} vs ${JSON.stringify(event)}`);
}

/** A client event example with the connection's own id (and `since`, if given) in place of the example's. */
function sendExample(client, name, exampleName, since) {
  const event = structuredClone(example(name, exampleName));
  assert.ok(validators[name](event));
  event.payload.id = client.id;
  if (since) event.payload.since = since;
  client.ws.send(JSON.stringify(event));
}

const errorFixed = ['type', 'payload.code', 'payload.message'];
const ERROR_TRIGGERS = {
  notConnected: (c) => c.send('subscribe'),
  notJson: (c) => c.ws.send('this is not JSON'),
  idNotString: (c) => c.ws.send(JSON.stringify({ type: 'connect', payload: { id: 42 } })),
  unknownType: (c) => c.send('SUBSCRIBE'),
  idMismatch: (c) => c.ws.send(JSON.stringify({ type: 'connect', payload: { id: 'not-this-connection' } })),
};

/** Scenarios per message example: each provokes the example for real and checks it. */
const ASYNCAPI_SCENARIOS = {
  'initial/initial': async () => {
    const c = await Client.open(servers.main.port);
    assertMatches(c.initial, 'initial', 'initial');
    assert.match(c.initial.payload.epoch, /^[0-9a-f]{16}$/);
    c.close();
  },
  'initial/noEpochYet': async () => {
    const c = await Client.open(servers.lonely.port);
    assertMatches(c.initial, 'initial', 'noEpochYet', ['type', 'payload.epoch', 'payload.offset']);
    c.close();
  },
  'subscribe_confirmation/plain': async () => {
    const c = await Client.open(servers.main.port);
    c.send('connect');
    sendExample(c, 'subscribe', 'plain');
    assertMatches(await c.next(), 'subscribe_confirmation', 'plain', ['type', 'payload.status']);
    c.close();
  },
  'subscribe_confirmation/recovered': async () => {
    const watcher = await (await Client.open(servers.main.port)).subscribed();
    const seen = await watcher.next();
    watcher.close();
    const c = await Client.open(servers.main.port);
    c.send('connect');
    const since = { epoch: c.initial.payload.epoch, offset: seen.payload.offset - 1 };
    sendExample(c, 'subscribe', 'withSince', since);
    const reply = await c.next();
    assertMatches(reply, 'subscribe_confirmation', 'recovered', ['type', 'payload.status', 'payload.recovered']);
    const replayed = await c.next();
    assert.equal(replayed.payload.offset, since.offset + 1, 'the replay starts right after since');
    assert.equal(replayed.payload.message, seen.payload.message, 'with the broadcast that was missed');
    c.close();
  },
  'subscribe_confirmation/gap': async () => {
    const c = await Client.open(servers.main.port);
    c.send('connect');
    sendExample(c, 'subscribe', 'withSince', { epoch: 'ffffffffffffffff', offset: 1 });
    assertMatches(await c.next(), 'subscribe_confirmation', 'gap', ['type', 'payload.status', 'payload.recovered']);
    c.close();
  },
  'wisdom_distribution/singleNode': async () => {
    const c = await (await Client.open(servers.main.port)).subscribed();
    assertMatches(await c.next(), 'wisdom_distribution', 'singleNode');
    c.close();
  },
  'wisdom_distribution/clusterTick': async () => {
    const c = await (await Client.open(servers.cluster.port)).subscribed();
    const event = await c.next();
    assertMatches(event, 'wisdom_distribution', 'clusterTick');
    const next = await c.next();
    assert.equal(next.payload.tick, event.payload.tick + 1, 'the cluster counts its ticks');
    c.close();
  },
  ...Object.fromEntries(Object.entries(ERROR_TRIGGERS).map(([name, trigger]) => [`error/${name}`, async () => {
    const c = await Client.open(servers.main.port);
    trigger(c);
    assertMatches(await c.next(), 'error', name, errorFixed);
    c.close();
  }])),
  'connect/connect': async () => {
    const c = await Client.open(servers.main.port);
    sendExample(c, 'connect', 'connect');
    await c.barrier(); // no reply of its own
    c.send('subscribe');
    assert.equal((await c.next()).type, 'subscribe_confirmation', 'subscribe is allowed after it');
    c.close();
  },
  'subscribe/plain': async () => {
    const c = await Client.open(servers.main.port);
    c.send('connect');
    sendExample(c, 'subscribe', 'plain');
    assert.equal((await c.next()).type, 'subscribe_confirmation');
    assert.equal((await c.next()).type, 'wisdom_distribution', 'a subscriber gets the broadcast');
    c.close();
  },
  'subscribe/withSince': async () => ASYNCAPI_SCENARIOS['subscribe_confirmation/recovered'](),
  'unsubscribe/unsubscribe': async () => {
    // On a server no other client uses, so that the count changes only by this one.
    const port = servers.slow.port;
    const c = await (await Client.open(port)).subscribed();
    assert.equal((await getJson(port, '/healthz')).subscribers, 1);
    sendExample(c, 'unsubscribe', 'unsubscribe');
    await c.barrier();
    assert.equal((await getJson(port, '/healthz')).subscribers, 0, 'it left the subscribers');
    await c.end();
  },
  'ping/ping': async () => {
    // On the server with --ping-timeout 1s: a silent connection is closed, one that pings is not.
    const pinging = await Client.open(servers.limits.port);
    const silent = await Client.open(servers.limits.port);
    const timer = setInterval(() => sendExample(pinging, 'ping', 'ping'), 250);
    try {
      assert.equal((await withTimeout(silent.closed, 'ping timeout')).code, 4000);
      const second = await Client.open(servers.limits.port); // opened a ping timeout after the first
      assert.equal((await withTimeout(second.closed, 'ping timeout')).code, 4000);
      await pinging.barrier(); // pings get no reply, and it is still open
    } finally {
      clearInterval(timer);
      pinging.close();
    }
  },
  'disconnect/disconnect': async () => {
    const c = await Client.open(servers.main.port);
    sendExample(c, 'disconnect', 'disconnect');
    assert.deepEqual(await withTimeout(c.closed, 'close'), { code: 1000, reason: '' });
  },
};

test('asyncapi.yaml: every message example is sent or received for real', async (t) => {
  const documented = Object.values(messages).flatMap((m) => m.examples().all().map((e) => `${m.name()}/${e.name()}`));
  assert.deepEqual(Object.keys(ASYNCAPI_SCENARIOS).sort(), documented.sort(),
    'one scenario per documented example, no more');
  for (const key of documented) await t.test(key, ASYNCAPI_SCENARIOS[key]);
});

/** Provokes each close; the key is "code reason" as in x-close-codes. */
const CLOSE_SCENARIOS = {
  '1000 ': async () => {
    const c = await Client.open(servers.main.port);
    c.send('disconnect');
    return c.closed;
  },
  '1001 server shutting down': null, // the last test: it stops the server
  '1002 ': async () => {
    const { response, socket, rest } = await rawUpgrade(servers.main.port);
    assert.equal(response.status, 101);
    socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69])); // a text frame without the client's mask
    return rawCloseFrame(socket, rest);
  },
  '1003 binary frames are not supported': async () => {
    const c = await Client.open(servers.main.port);
    c.ws.send(Buffer.from('binary'), { binary: true });
    return c.closed;
  },
  '1007 ': async () => {
    const c = await Client.open(servers.main.port);
    c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    return c.closed;
  },
  '1008 rate limit': async () => {
    const c = await Client.open(servers.main.port);
    for (let i = 0; i < 60; i++) c.send('ping');
    return c.closed;
  },
  '1008 slow consumer': async () => {
    // A subscriber that stops reading: 15 KB broadcasts fill its socket, then its queue of 2, and
    // three replies that are never dropped reach twice --max-queue. When it reads again, the close
    // frame is there.
    const port = servers.slow.port;
    const c = await (await Client.open(port)).subscribed();
    c.ws._socket.pause();
    const message = JSON.stringify({ message: 'w'.repeat(14000) });
    while ((await getJson(port, '/api/stats', bearer)).wisdom_dropped === 0) {
      const res = await request(port, 'POST', '/api/wisdom', { headers: bearer, body: message });
      assert.ok([202, 503].includes(res.status), `publish: ${res.status}`);
    }
    const from = servers.slow.lines.length;
    for (let i = 0; i < 3; i++) c.send('subscribe');
    await servers.slow.waitForLine(/\bevict\b.*\breason=slow_consumer\b/, from);
    c.ws._socket.resume();
    return c.closed;
  },
  '1008 too many errors': async () => {
    const c = await Client.open(servers.limits.port);
    for (let i = 0; i < 3; i++) c.ws.send('not JSON');
    for (let i = 0; i < 2; i++) assert.equal((await c.next()).payload.code, 'bad_message');
    return c.closed;
  },
  '1009 ': async () => {
    const c = await Client.open(servers.main.port);
    c.ws.send('x'.repeat(4097));
    return c.closed;
  },
  '4000 ping timeout': async () => {
    const c = await Client.open(servers.limits.port);
    return c.closed;
  },
};

const closeCodes = asyncapi.document.channels().all().find((c) => c.address() === '/ws').json()['x-close-codes'];

test('asyncapi.yaml: every close code is provoked, with its reason', async (t) => {
  const documented = closeCodes.map((e) => `${e.code} ${e.reason ?? ''}`);
  assert.deepEqual(Object.keys(CLOSE_SCENARIOS).sort(), documented.sort(), 'one scenario per close, no more');
  for (const key of documented) {
    if (!CLOSE_SCENARIOS[key]) continue;
    await t.test(key, async () => {
      const close = await withTimeout(CLOSE_SCENARIOS[key](), `close ${key}`);
      assert.equal(`${close.code} ${close.reason}`, key);
    });
  }
});

// ---- OpenAPI -------------------------------------------------------------------------------

/** Responses no request from outside can provoke on demand, with the reason. */
const UNPROVOKABLE = {
  'GET /readyz 503 application/json#starting': 'the listener is not up yet, so nothing can ask',
  'GET /readyz 503 application/json#shuttingDown': 'shutdown closes the listener and every idle HTTP connection at once; only a request already being answered sees it',
  'HEAD /readyz 503': 'as GET /readyz 503',
  'POST /api/wisdom 503 application/json#shuttingDown': 'as GET /readyz 503 #shuttingDown',
};

const post = (port, body, headers = bearer) => request(port, 'POST', '/api/wisdom', { headers, body });
const m = () => servers.main.port;
const l = () => servers.limits.port;

/** Per documented response: the request that provokes it. */
const OPENAPI_SCENARIOS = {
  'GET / 200 text/html; charset=utf-8': () => request(m(), 'GET', '/'),
  'HEAD / 200': () => request(m(), 'HEAD', '/'),
  'GET /index.html 200 text/html; charset=utf-8': () => request(m(), 'GET', '/index.html'),
  'HEAD /index.html 200': () => request(m(), 'HEAD', '/index.html'),
  'GET /{asset} 200 text/javascript; charset=utf-8': () => request(m(), 'GET', '/app.js'),
  'GET /{asset} 200 text/css; charset=utf-8': () => request(m(), 'GET', '/style.css'),
  'GET /{asset} 200 image/svg+xml': () => request(m(), 'GET', '/favicon.svg'),
  'GET /{asset} 200 application/octet-stream': () => request(m(), 'GET', '/data.bin'),
  'GET /{asset} 404 text/plain; charset=utf-8': () => request(m(), 'GET', '/no-such-file.js'),
  'HEAD /{asset} 200': () => request(m(), 'HEAD', '/app.js'),
  'HEAD /{asset} 404': () => request(m(), 'HEAD', '/no-such-file.js'),
  'GET /healthz 200 application/json#singleNode': () => request(m(), 'GET', '/healthz'),
  'GET /healthz 200 application/json#clusterNode': () => request(servers.cluster.port, 'GET', '/healthz'),
  'GET /healthz 200 application/json#clusterNodeBeforeRedis': () => request(servers.lonely.port, 'GET', '/healthz'),
  'HEAD /healthz 200': () => request(m(), 'HEAD', '/healthz'),
  'GET /readyz 200 application/json': () => request(m(), 'GET', '/readyz'),
  'HEAD /readyz 200': () => request(m(), 'HEAD', '/readyz'),
  'GET /metrics 200 text/plain; version=0.0.4; charset=utf-8': () => request(m(), 'GET', '/metrics'),
  'HEAD /metrics 200': () => request(m(), 'HEAD', '/metrics'),
  'POST /api/wisdom 202 application/json': () => post(m(), JSON.stringify({ message: 'The pack gathers at moonrise.' })),
  'POST /api/wisdom 400 application/json#notAnObject': () => post(m(), '["message"]'),
  'POST /api/wisdom 400 application/json#notAString': () => post(m(), '{"message":42}'),
  'POST /api/wisdom 400 application/json#empty': () => post(m(), '{"message":""}'),
  'POST /api/wisdom 400 application/json#tooLong': () => post(m(), JSON.stringify({ message: 'w'.repeat(4097) })),
  'POST /api/wisdom 400 text/plain; charset=utf-8': () =>
    exchange(m(), 'POST /api/wisdom HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n'),
  'POST /api/wisdom 401 application/json#missing': () => post(m(), '{"message":"x"}', {}),
  'POST /api/wisdom 401 application/json#invalid': () => post(m(), '{"message":"x"}', { Authorization: 'Bearer wrong' }),
  'POST /api/wisdom 404 text/plain; charset=utf-8': () => post(l(), '{"message":"x"}'),
  'POST /api/wisdom 413 application/json': () => post(m(), JSON.stringify({ message: 'w'.repeat(17 * 1024) })),
  'POST /api/wisdom 503 application/json#busy': () => post(servers.lonely.port, '{"message":"x"}'),
  'GET /api/wisdom 405 application/json': () => request(m(), 'GET', '/api/wisdom', { headers: bearer }),
  'GET /api/wisdom 404 text/plain; charset=utf-8': () => request(l(), 'GET', '/api/wisdom'),
  'GET /api/stats 200 application/json': () => request(m(), 'GET', '/api/stats', { headers: bearer }),
  'GET /api/stats 401 application/json#missing': () => request(m(), 'GET', '/api/stats'),
  'GET /api/stats 401 application/json#invalid': () =>
    request(m(), 'GET', '/api/stats', { headers: { Authorization: 'Bearer wrong' } }),
  'GET /api/stats 404 text/plain; charset=utf-8': () => request(l(), 'GET', '/api/stats'),
  'HEAD /api/stats 200': () => request(m(), 'HEAD', '/api/stats', { headers: bearer }),
  'HEAD /api/stats 401': () => request(m(), 'HEAD', '/api/stats'),
  'HEAD /api/stats 404': () => request(l(), 'HEAD', '/api/stats'),
  'POST /api/stats 405 application/json': () => request(m(), 'POST', '/api/stats', { headers: bearer, body: '{}' }),
  'POST /api/stats 404 text/plain; charset=utf-8': () => request(l(), 'POST', '/api/stats', { body: '{}' }),
  'GET /ws 101': async () => {
    const { response, socket } = await rawUpgrade(m());
    socket.destroy();
    return response;
  },
  'GET /ws 426 text/plain; charset=utf-8#noUpgrade': async () => {
    const res = await request(m(), 'GET', '/ws');
    assert.equal(res.headers.upgrade, 'websocket');
    return res;
  },
  'GET /ws 426 text/plain; charset=utf-8#otherVersion': async () => {
    const res = await exchange(m(), upgradeRequest(m()).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 8'));
    assert.equal(res.headers['sec-websocket-version'], '13');
    return res;
  },
  'GET /ws 400 text/plain; charset=utf-8#malformed': () => exchange(m(), 'GET /ws HTTP/1.1\r\nNo colon here\r\n\r\n'),
  'GET /ws 400 text/plain; charset=utf-8#noKey': () => exchange(m(),
    'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n'),
  'GET /ws 503 text/plain; charset=utf-8': async () => {
    // --max-connections 2 on this server: the third Upgrade is refused.
    const held = [await Client.open(l()), await Client.open(l())];
    try {
      return await exchange(l(), upgradeRequest(l()));
    } finally {
      await Promise.all(held.map((c) => c.end()));
    }
  },
  'HEAD /ws 426': () => request(m(), 'HEAD', '/ws'),
};

/** Every documented response as "METHOD path status [media[#example]]", with what to check it against. */
function documentedResponses(api) {
  const out = [];
  for (const [route, item] of Object.entries(api.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'head', 'post', 'put', 'delete', 'patch'].includes(method)) continue;
      for (const [status, response] of Object.entries(op.responses)) {
        const base = `${method.toUpperCase()} ${route} ${status}`;
        const content = Object.entries(response.content ?? {});
        if (content.length === 0) out.push({ key: base, status: Number(status), response });
        for (const [type, media] of content) {
          if ('example' in media) out.push({ key: `${base} ${type}`, status: Number(status), response, type, media, example: media.example });
          for (const [name, e] of Object.entries(media.examples ?? {}))
            out.push({ key: `${base} ${type}#${name}`, status: Number(status), response, type, media, example: e.value });
        }
      }
    }
  }
  return out;
}

/** Values that must equal the example's, not only have its shape. */
const OPENAPI_FIXED = ['status', 'error', 'broker', 'broker_connected', 'redis.tls', 'redis.deck', 'redis.master', 'redis.role'];

function checkResponse(entry, res) {
  assert.equal(res.status, entry.status, `status: ${JSON.stringify(res.body).slice(0, 200)}`);
  for (const [name, header] of Object.entries(entry.response.headers ?? {})) {
    const value = res.headers[name.toLowerCase()];
    if (header.required) assert.ok(value !== undefined, `header ${name} is present`);
    if (value === undefined || !header.schema) continue;
    const typed = header.schema.type === 'integer' ? Number(value) : value;
    const validate = draft2020.compile(header.schema);
    assert.ok(validate(typed), `header ${name}: ${value}: ${JSON.stringify(validate.errors)}`);
  }
  if (!entry.media) {
    assert.equal(res.body, '', 'no body');
    return;
  }
  assert.equal(res.headers['content-type'], entry.type, 'Content-Type');
  const json = entry.type === 'application/json';
  const body = json ? JSON.parse(res.body) : res.body;
  const validate = draft2020.compile(entry.media.schema);
  assert.ok(validate(body), `body ${JSON.stringify(body).slice(0, 300)}: ${JSON.stringify(validate.errors)}`);
  if (json) {
    const fixed = entry.key.includes('clusterNodeBeforeRedis') ? OPENAPI_FIXED
      : OPENAPI_FIXED.filter((k) => k !== 'redis.master'); // a real master has another address
    assert.deepEqual(differences(body, entry.example, fixed), [], `${JSON.stringify(body)}`);
  } else if (entry.type === 'text/plain; charset=utf-8') {
    assert.equal(body, entry.example, 'the text, exactly');
  } else if (entry.type.startsWith('text/plain; version=0.0.4')) {
    for (const line of entry.example.split('\n').filter((x) => x.startsWith('# TYPE ')))
      assert.ok(body.split('\n').includes(line), `/metrics has "${line}"`);
  } else {
    assert.ok(body.length > 0, 'a body');
  }
}

test('openapi.yaml: every response example is what the running server answers', async (t) => {
  const documented = documentedResponses(openapi.api);
  const keys = documented.map((d) => d.key);
  for (const key of Object.keys(UNPROVOKABLE)) assert.ok(keys.includes(key), `${key} is documented`);
  assert.deepEqual(Object.keys(OPENAPI_SCENARIOS).sort(), keys.filter((k) => !(k in UNPROVOKABLE)).sort(),
    'one scenario per documented response, no more');
  for (const entry of documented) {
    if (entry.key in UNPROVOKABLE) {
      t.diagnostic(`not provoked: ${entry.key}: ${UNPROVOKABLE[entry.key]}`);
      continue;
    }
    await t.test(entry.key, async () => checkResponse(entry, await OPENAPI_SCENARIOS[entry.key]()));
  }
});

// ---- last: shutdown ------------------------------------------------------------------------

test('asyncapi.yaml: close 1001 server shutting down', async () => {
  const key = '1001 server shutting down';
  assert.ok(closeCodes.some((e) => `${e.code} ${e.reason}` === key));
  const c = await Client.open(servers.limits.port);
  await servers.limits.stop('SIGTERM');
  const close = await withTimeout(c.closed, 'close');
  assert.equal(`${close.code} ${close.reason}`, key);
  assert.deepEqual(await servers.limits.exited, { code: 0, signal: null });
});
