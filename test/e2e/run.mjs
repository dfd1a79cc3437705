// End-to-end browser tests for the Wolf Wisdom embedded UI.
//
//   node test/e2e/run.mjs --binary build/release/wolf-wisdom --out build/e2e-screenshots
//
// Starts the real server binary on 127.0.0.1, drives Debian's /usr/bin/chromium through
// playwright-core (no browser download) and checks what the page shows. Uses only Node's
// built-in test runner, so it runs on Node 18 and 20. Exit status: 0 all passed, 1 a scenario
// failed, 2 bad usage / server did not start, 77 a prerequisite is missing (CTest's skip code).
//
// See README.md next to this file for what each scenario checks.

import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, accessSync, constants as fsConstants } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.WOLF_E2E_CHROMIUM || '/usr/bin/chromium'; // override only to test the skip path
const HOST = '127.0.0.1';
const INTERVAL_MS = 500; // --interval of the shared server
const PING_TIMEOUT_S = 7; // --ping-timeout of every server started here
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const SKIP = 77;

// ---- command line -------------------------------------------------------------------------

function usage(msg) {
  if (msg) console.error('e2e: ' + msg);
  console.error('usage: node test/e2e/run.mjs --binary <path to wolf-wisdom> --out <screenshot directory>');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { binary: '', out: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const take = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (key === '--binary') opts.binary = take() || '';
    else if (key === '--out') opts.out = take() || '';
    else if (key === '-h' || key === '--help') usage();
    else usage('unknown argument: ' + a);
  }
  if (!opts.binary) usage('--binary is required');
  if (!opts.out) usage('--out is required');
  return { binary: path.resolve(opts.binary), out: path.resolve(opts.out) };
}

const opts = parseArgs(process.argv.slice(2));

// ---- prerequisites (skip with 77, never pass silently) ------------------------------------

async function loadPlaywright() {
  let resolved;
  try {
    // Resolve from this directory so the suite works from any cwd.
    resolved = createRequire(path.join(HERE, 'package.json')).resolve('playwright-core');
  } catch (e) {
    return null;
  }
  const mod = await import(pathToFileURL(resolved).href);
  return mod.chromium || (mod.default && mod.default.chromium) || null;
}

const chromium = await loadPlaywright();
if (!chromium) {
  console.log('e2e: SKIP: playwright-core is not installed in ' + HERE +
    ' (install it with: npm ci --prefix test/e2e)');
  process.exit(SKIP);
}
if (!existsSync(CHROMIUM)) {
  console.log('e2e: SKIP: ' + CHROMIUM + ' is missing (install it with: apt-get install chromium)');
  process.exit(SKIP);
}
try {
  accessSync(opts.binary, fsConstants.X_OK);
} catch (e) {
  usage('server binary not found or not executable: ' + opts.binary +
    ' (build it: cmake --preset release && cmake --build --preset release --target wolf-wisdom)');
}
mkdirSync(opts.out, { recursive: true });

// ---- small helpers ------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `fn` until it returns a truthy value; return that value or throw after `timeout` ms. */
async function waitUntil(fn, { timeout = 5000, every = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function shotPath(name) {
  return path.join(opts.out, name + '.png');
}

// ---- the server under test ----------------------------------------------------------------

const liveServers = new Set();

class WolfServer {
  constructor(port, extraArgs = []) {
    this.port = port;
    this.args = ['--host', HOST, '--port', String(port), '--interval', `${INTERVAL_MS}ms`,
      '--ping-timeout', `${PING_TIMEOUT_S}s`, '--log-level', 'info', ...extraArgs];
    this.lines = []; // every stderr/stdout line of every run of this server, in order
    this.proc = null;
  }

  /** A server on a fresh free port; a port taken between probing and binding gets a new try. */
  static async launch(extraArgs = [], tries = 3) {
    for (let i = 1; ; i++) {
      const srv = new WolfServer(await freePort(), extraArgs);
      try {
        return await srv.start();
      } catch (e) {
        if (i >= tries) throw e;
      }
    }
  }

  get url() { return `http://${HOST}:${this.port}/`; }

  /** Start the binary and resolve once it logged `listening url=... port=...` (no sleeps). */
  async start({ timeout = 10000 } = {}) {
    const proc = spawn(opts.binary, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    liveServers.add(proc);
    const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    proc.exitInfo = exited;
    exited.then(() => liveServers.delete(proc));
    let listening;
    const ready = new Promise((resolve) => { listening = resolve; });
    for (const stream of [proc.stderr, proc.stdout]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.lines.push(line);
          if (process.env.E2E_SERVER_LOG) console.error('[server] ' + line);
          if (/\blistening url=http:\/\//.test(line)) listening(line);
        }
      });
    }
    let timer;
    const outcome = await Promise.race([
      ready.then((line) => ({ line })),
      exited.then((info) => ({ exited: info })),
      new Promise((resolve) => { timer = setTimeout(() => resolve({ timeout: true }), timeout); }),
    ]);
    clearTimeout(timer);
    if (outcome.line) {
      const m = /\blistening url=http:\/\/\S+ port=(\d+)\b/.exec(outcome.line);
      assert.ok(m && Number(m[1]) === this.port, `server listens on the requested port: ${outcome.line}`);
      return this;
    }
    if (!outcome.exited) this.kill('SIGKILL');
    const tail = this.lines.slice(-10).join('\n');
    throw new Error(outcome.exited
      ? `server exited before listening (code ${outcome.exited.code}, signal ${outcome.exited.signal}):\n${tail}`
      : `server did not log "listening" within ${timeout} ms:\n${tail}`);
  }

  kill(signal) {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      try { process.kill(proc.pid, signal); } catch (e) { /* already gone */ }
    }
  }

  /** Stop by PID: SIGTERM, then SIGKILL if it does not exit within `grace` ms. */
  async stop({ signal = 'SIGTERM', grace = 8000 } = {}) {
    const proc = this.proc;
    if (!proc) return null;
    this.kill(signal);
    let timer;
    const res = await Promise.race([
      proc.exitInfo,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), grace); }),
    ]);
    clearTimeout(timer);
    if (res) return res;
    this.kill('SIGKILL');
    return proc.exitInfo;
  }

  /** Index into `lines`: pass as `from` to only look at what is logged afterwards. */
  mark() { return this.lines.length; }

  find(re, from = 0) {
    for (let i = from; i < this.lines.length; i++) if (re.test(this.lines[i])) return this.lines[i];
    return null;
  }

  grep(re, from = 0) { return this.lines.slice(from).filter((l) => re.test(l)); }

  waitForLine(re, { from = 0, timeout = 5000 } = {}) {
    return waitUntil(() => this.find(re, from), { timeout, every: 25, what: `server log line ${re}` });
  }
}

// Safety net: whatever happens (failed hook, uncaught error), never leave a server behind.
process.on('exit', () => {
  for (const proc of liveServers) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch (e) { /* gone */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`e2e: ${sig}, stopping`);
    process.exit(130);
  });
}

/** The timestamp (ms) at the start of a server log line, e.g. `2026-01-02T03:04:05.678Z info ...`. */
function logTime(line) {
  const ms = line ? Date.parse(line.split(/\s/, 1)[0]) : NaN;
  assert.ok(Number.isFinite(ms), `log line starts with a timestamp: ${line}`);
  return ms;
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A TCP proxy on 127.0.0.1 in front of a server, for dropping a page's connection under it: cut() closes
 * every connection it forwards and refuses new ones until restore() listens on the same port again.
 */
class TcpProxy {
  constructor(target) {
    this.target = target;
    this.port = 0;
    this.sockets = new Set();
    this.server = null;
  }

  get url() { return `http://${HOST}:${this.port}/`; }

  async restore() {
    this.server = createServer((client) => {
      const upstream = tcpConnect(this.target.port, HOST);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, HOST, resolve);
    });
    this.port = this.server.address().port;
    return this;
  }

  async cut() {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

// ---- the browser --------------------------------------------------------------------------

const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

// Runs in the page before app.js (test instrumentation, not part of the UI):
//  - counts what the page hands to WebSocket.send, so scenarios can prove "sends nothing more";
//  - can hold incoming messages for a moment (window.__e2e.hold / release) so that a screenshot
//    shows one settled state (and two pages shot in parallel show the same tick). Nothing is
//    dropped: release() delivers the held messages in order. Only screenshots use it.
function instrumentWebSocket() {
  const e2e = { sent: [], hold: false, held: [] };
  const proto = WebSocket.prototype;
  const origSend = proto.send;
  proto.send = function (data) {
    let type = '?';
    try { type = JSON.parse(data).type; } catch (e) { /* not JSON */ }
    e2e.sent.push({ t: Date.now(), type });
    return origSend.apply(this, arguments);
  };
  const onmessage = Object.getOwnPropertyDescriptor(proto, 'onmessage');
  if (onmessage && onmessage.set && onmessage.get) {
    const wrapped = new WeakMap();
    Object.defineProperty(proto, 'onmessage', {
      configurable: true,
      enumerable: onmessage.enumerable,
      get() { return wrapped.has(this) ? wrapped.get(this) : onmessage.get.call(this); },
      set(fn) {
        const ws = this;
        wrapped.set(ws, fn);
        onmessage.set.call(ws, typeof fn !== 'function' ? fn : function (ev) {
          if (e2e.hold) e2e.held.push(() => fn.call(ws, ev));
          else return fn.call(ws, ev);
        });
      },
    });
  }
  e2e.release = () => {
    e2e.hold = false;
    const queued = e2e.held.splice(0);
    for (const deliver of queued) deliver();
    return queued.length;
  };
  window.__e2e = e2e;
}

/**
 * A page in its own fresh browser context, with error collection.
 * `config` is injected as window.WOLF_CONFIG before app.js runs.
 */
async function openPage(browser, server, { config, context: ctxOpts = {}, query = '' } = {}) {
  const context = await browser.newContext(ctxOpts);
  context.setDefaultTimeout(10000);
  const page = await context.newPage();
  const problems = { console: [], pageErrors: [], failed: [], badStatus: [] };
  const sockets = [];
  page.on('console', (msg) => { if (msg.type() === 'error') problems.console.push(msg.text()); });
  page.on('pageerror', (err) => problems.pageErrors.push(String(err && err.message || err)));
  page.on('requestfailed', (req) => {
    problems.failed.push(`${req.method()} ${req.url()}: ${req.failure() ? req.failure().errorText : '?'}`);
  });
  page.on('response', (res) => { if (res.status() >= 400) problems.badStatus.push(`${res.status()} ${res.url()}`); });
  page.on('websocket', (ws) => {
    const rec = { url: ws.url(), sent: [], received: [] };
    ws.on('framesent', (f) => rec.sent.push(f.payload));
    ws.on('framereceived', (f) => rec.received.push(f.payload));
    sockets.push(rec);
  });
  await page.addInitScript(instrumentWebSocket);
  if (config) {
    await page.addInitScript((cfg) => { window.WOLF_CONFIG = cfg; }, config);
  }
  await page.goto(server.url + query);
  return { context, page, problems, sockets };
}

/** Assert a page produced no console errors, page errors, failed requests or HTTP errors. */
function assertClean(p, { allowConsole = [] } = {}) {
  const consoleErrors = p.problems.console.filter((t) => !allowConsole.some((re) => re.test(t)));
  assert.deepEqual(consoleErrors, [], 'no console errors');
  assert.deepEqual(p.problems.pageErrors, [], 'no uncaught page errors');
  assert.deepEqual(p.problems.failed, [], 'no failed requests');
  assert.deepEqual(p.problems.badStatus, [], 'no HTTP responses >= 400');
}

const text = (page, sel) => page.locator(sel).textContent().then((t) => (t || '').trim());
const feedCount = async (page) => Number(await text(page, '#feed-count'));
const sentCount = (page) => page.evaluate(() => window.__e2e.sent.length);
const sentTypes = (page) => page.evaluate(() => window.__e2e.sent.map((s) => s.type));

/** Everything a scenario compares, read atomically (one evaluate) from the page. */
const snapshot = (page) => page.evaluate(() => {
  const t = (sel) => { const e = document.querySelector(sel); return e ? (e.textContent || '').trim() : ''; };
  return {
    state: t('#state'), id: t('#client-id'), subscription: t('#subscription'),
    count: Number(t('#feed-count')), latest: t('#latest-quote'), newestFeed: t('#feed > li:first-child .feed-text'),
  };
});

async function waitState(page, state, timeout = 10000) {
  await page.locator(`#state[data-state="${state}"]`).waitFor({ state: 'attached', timeout });
  assert.equal(await text(page, '#state'), state);
}

async function waitConnected(page, timeout = 10000) {
  await waitState(page, 'connected', timeout);
  await page.waitForFunction(() => (document.getElementById('client-id').textContent || '').length > 0,
    null, { timeout });
  const id = await text(page, '#client-id');
  assert.match(id, UUID_V4, '#client-id is a lowercase UUID v4');
  return id;
}

async function subscribe(page) {
  await page.click('#btn-subscribe');
  await page.locator('#subscription[data-subscribed="true"]').waitFor({ state: 'attached' });
  assert.equal(await text(page, '#subscription'), 'subscribed');
}

async function waitFeedAtLeast(page, n, timeout = 5000) {
  await page.waitForFunction((min) => Number(document.getElementById('feed-count').textContent) >= min,
    n, { timeout, polling: 25 });
  return feedCount(page);
}

/**
 * A full-page screenshot of what the page shows now. A shot takes longer than one 500 ms
 * interval here, and each new quote restarts a 0.6 s fade-in from opacity 0, so incoming
 * messages are held for the duration (see instrumentWebSocket) and animations are finished.
 */
async function screenshot(page, name, { hold = true } = {}) {
  if (hold) await page.evaluate(() => { window.__e2e.hold = true; });
  try {
    await page.screenshot({ path: shotPath(name), fullPage: true, animations: 'disabled' });
  } finally {
    if (hold) await page.evaluate(() => window.__e2e.release()).catch(() => {});
  }
}

/**
 * Screenshots of several subscribed pages that show the same newest quote. A full-page shot
 * takes longer than a 500 ms interval here, so right after a tick reached every page, incoming
 * messages are held (see instrumentWebSocket), the shots are taken, and the messages released.
 * Returns the quote the shots show.
 */
async function screenshotsBetweenTicks(shots, tries = 5) {
  for (let i = 1; ; i++) {
    const counts = await Promise.all(shots.map((s) => feedCount(s.page)));
    await Promise.all(shots.map((s, k) => waitFeedAtLeast(s.page, counts[k] + 1, 2 * INTERVAL_MS + 4000)));
    await Promise.all(shots.map((s) => s.page.evaluate(() => { window.__e2e.hold = true; })));
    try {
      const snaps = await Promise.all(shots.map((s) => snapshot(s.page)));
      if (snaps.every((x) => x.latest === snaps[0].latest && x.newestFeed === x.latest)) {
        await Promise.all(shots.map((s) => screenshot(s.page, s.name, { hold: false })));
        return snaps[0].latest;
      }
      // A tick reached some page between the wait and the hold: try again on the next one.
      if (i >= tries) throw new Error('pages never showed the same newest quote for a screenshot');
    } finally {
      await Promise.all(shots.map((s) => s.page.evaluate(() => window.__e2e.release())));
    }
  }
}

// ---- global setup / teardown --------------------------------------------------------------

const t0 = Date.now();
const results = [];
let server;
let browser;
try {
  server = await WolfServer.launch();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS });
} catch (e) {
  console.error('e2e: setup failed: ' + (e && e.stack || e));
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
  process.exit(2);
}
console.log(`# e2e: server ${opts.binary} pid ${server.proc.pid} on ${server.url}, ` +
  `chromium ${browser.version()}, screenshots in ${opts.out}`);

after(async () => {
  await browser.close().catch(() => {});
  const res = await server.stop();
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log('# e2e summary:');
  for (const r of results) console.log(`#   ${r.ok ? 'ok  ' : 'FAIL'} ${r.name} (${(r.ms / 1000).toFixed(1)} s)`);
  console.log(`# e2e: ${results.filter((r) => r.ok).length}/${results.length} scenarios passed in ${secs} s; ` +
    `server stopped with ${res && res.signal ? 'signal ' + res.signal : 'exit ' + (res && res.code)}`);
});

/** One scenario: a test with a timeout, pages closed afterwards, result recorded for the summary. */
function scenario(name, timeoutMs, fn) {
  test(name, { timeout: timeoutMs }, async () => {
    const started = Date.now();
    const contexts = [];
    const open = async (srv, o) => {
      const p = await openPage(browser, srv, o);
      contexts.push(p.context);
      return p;
    };
    let ok = false;
    try {
      await fn({ open });
      ok = true;
    } finally {
      results.push({ name, ok, ms: Date.now() - started });
      await Promise.all(contexts.map((c) => c.close().catch(() => {})));
    }
  });
}

// ---- scenarios ----------------------------------------------------------------------------

scenario('01 page loads cleanly, connects and shows a lowercase UUID v4 client id', 30000, async ({ open }) => {
  const a = await open(server);
  const id = await waitConnected(a.page);
  assert.equal(await text(a.page, '#subscription'), 'not subscribed');
  assert.equal(await a.page.evaluate(() => window.wolf.id), id, 'window.wolf.id matches #client-id');
  // The server saw this very id: it logged the open and the client's `connect`.
  await server.waitForLine(new RegExp(`\\bconnect id=${escapeRe(id)}\\b`));
  assert.ok(await a.page.locator('#btn-subscribe').isEnabled(), 'Subscribe is enabled once connected');
  assert.equal(await text(a.page, '#close-info'), '');
  await screenshot(a.page, '01-loaded');
  assertClean(a);
});

scenario('02 two pages in separate contexts subscribe and show the same newest quote', 30000, async ({ open }) => {
  const [a, b] = await Promise.all([open(server), open(server)]);
  const [idA, idB] = await Promise.all([waitConnected(a.page), waitConnected(b.page)]);
  assert.notEqual(idA, idB, 'each connection gets its own id');
  const from = server.mark();
  await Promise.all([subscribe(a.page), subscribe(b.page)]);
  const subscribedAt = Date.now();
  // Both have at least one quote and the newest ones agree: that is a tick both received.
  // Each page is read in one evaluate, so its latest quote and newest feed entry are consistent.
  const budget = 2 * INTERVAL_MS + 1000; // two intervals, plus slack for polling and rendering
  const [sa, sb] = await waitUntil(async () => {
    const snaps = await Promise.all([snapshot(a.page), snapshot(b.page)]);
    const [x, y] = snaps;
    return x.count >= 1 && y.count >= 1 && x.latest !== '' && x.latest === y.latest ? snaps : null;
  }, { timeout: budget, every: 20, what: 'both pages showing the same newest quote' });
  const took = Date.now() - subscribedAt;
  const latest = sa.latest;
  for (const snap of [sa, sb]) {
    assert.equal(snap.newestFeed, latest, 'the newest feed entry is the latest quote');
    assert.equal(snap.subscription, 'subscribed');
  }
  // The server broadcast one tick to (at least) both of them.
  await server.waitForLine(/\btick number=\d+ recipients=([2-9]|\d\d+)\b/, { from });
  const shown = await screenshotsBetweenTicks([
    { page: a.page, name: '02-two-pages-subscribed-a' }, { page: b.page, name: '02-two-pages-subscribed-b' }]);
  // Held messages were delivered on release: both pages keep receiving.
  const [ca, cb] = await Promise.all([feedCount(a.page), feedCount(b.page)]);
  await Promise.all([waitFeedAtLeast(a.page, ca + 1), waitFeedAtLeast(b.page, cb + 1)]);
  console.log(`# 02: same quote on both pages ${took} ms after both subscribed: "${latest}"; ` +
    `screenshots show "${shown}"`);
  assertClean(a);
  assertClean(b);
});

scenario('03 after unsubscribing, a page\'s feed stops growing while the other\'s keeps growing', 30000, async ({ open }) => {
  const [a, b] = await Promise.all([open(server), open(server)]);
  const [idA] = await Promise.all([waitConnected(a.page), waitConnected(b.page)]);
  await Promise.all([subscribe(a.page), subscribe(b.page)]);
  await Promise.all([waitFeedAtLeast(a.page, 1), waitFeedAtLeast(b.page, 1)]);

  const from = server.mark();
  await a.page.click('#btn-unsubscribe');
  await a.page.locator('#subscription[data-subscribed="false"]').waitFor({ state: 'attached' });
  assert.equal(await text(a.page, '#subscription'), 'not subscribed');
  const countA0 = await feedCount(a.page);
  const countB0 = await feedCount(b.page);
  const sentUnsub = await sentTypes(a.page); // a ping may follow; only the order matters
  assert.ok(sentUnsub.lastIndexOf('unsubscribe') > sentUnsub.lastIndexOf('subscribe'),
    `the page sent unsubscribe after subscribe: ${sentUnsub.join(',')}`);
  await server.waitForLine(new RegExp(`\\bunsubscribe id=${escapeRe(idA)}\\b`), { from });

  // Instead of sleeping: wait for the still-subscribed page to receive three more quotes.
  await waitFeedAtLeast(b.page, countB0 + 3, 3 * INTERVAL_MS + 4000);
  const countA1 = await feedCount(a.page);
  assert.ok(countA1 - countA0 <= 1,
    `unsubscribed page got at most one in-flight quote (had ${countA0}, now ${countA1})`);
  // And it stays put from here on: one more tick for B, none (beyond the in-flight one) for A.
  const countB1 = await feedCount(b.page);
  await waitFeedAtLeast(b.page, countB1 + 1, 2 * INTERVAL_MS + 4000);
  const countA2 = await feedCount(a.page);
  assert.ok(countA2 - countA0 <= 1, `still at most one in-flight quote over 4+ ticks (had ${countA0}, now ${countA2})`);
  assert.equal(await text(a.page, '#subscription'), 'not subscribed');
  assert.equal(await text(b.page, '#subscription'), 'subscribed');
  assert.ok(await a.page.locator('#btn-subscribe').isEnabled(), 'Subscribe is offered again');
  await Promise.all([screenshot(a.page, '03-unsubscribed-a'), screenshot(b.page, '03-still-subscribed-b')]);
  console.log(`# 03: A ${countA0} -> ${countA1} quotes after unsubscribe, B ${countB0} -> ${await feedCount(b.page)}`);
  assertClean(a);
  assertClean(b);
});

scenario('04 Disconnect closes with 1000, stays closed and sends nothing more', 30000, async ({ open }) => {
  // A fast ping timer makes "sends nothing more" meaningful: a leaked timer would show up at once.
  const a = await open(server, { config: { pingIntervalMs: 200 } });
  const id = await waitConnected(a.page);
  await subscribe(a.page);
  await waitFeedAtLeast(a.page, 1);
  await waitUntil(async () => (await sentTypes(a.page)).includes('ping'), { what: 'a ping (timer running)' });

  const from = server.mark();
  await a.page.click('#btn-disconnect');
  await waitState(a.page, 'closed');
  await a.page.waitForFunction(() => /\b1000\b/.test(document.getElementById('close-info').textContent),
    null, { timeout: 5000 });
  const closeInfo = await text(a.page, '#close-info');
  assert.match(closeInfo, /^closed: 1000\b/, '#close-info shows the 1000 close');
  const sent = await sentTypes(a.page);
  assert.equal(sent[sent.length - 1], 'disconnect', 'the last thing the page sent is disconnect');
  await server.waitForLine(new RegExp(`\\bdisconnect id=${escapeRe(id)}\\b`), { from });
  await server.waitForLine(new RegExp(`\\bclosed id=${escapeRe(id)}\\b`), { from });
  const afterClose = server.mark();
  const sentAtClose = sent.length;
  const wireAtClose = a.sockets[0].sent.length;

  // Observe for two broadcast intervals, measured by the server's own tick lines.
  await server.waitForLine(/\btick number=\d+\b/, { from: afterClose });
  const oneTick = server.mark();
  await server.waitForLine(/\btick number=\d+\b/, { from: oneTick });
  await sleep(50); // let any (wrong) page reaction to the second tick land

  assert.equal(await sentCount(a.page), sentAtClose, 'WebSocket.send was not called after the close');
  assert.equal(a.sockets.length, 1, 'no new WebSocket was opened (no auto-reconnect)');
  assert.equal(a.sockets[0].sent.length, wireAtClose, 'no frame left the browser after the close');
  assert.deepEqual(server.grep(new RegExp(escapeRe(id)), afterClose), [], 'the server saw nothing more from this id');
  assert.equal(await text(a.page, '#state'), 'closed');
  assert.equal(await a.page.evaluate(() => window.wolf.ws && window.wolf.ws.readyState), 3, 'socket is CLOSED');
  assert.ok(await a.page.locator('#btn-reconnect').isEnabled(), 'Reconnect is offered');
  assert.ok(await a.page.locator('#btn-disconnect').isDisabled(), 'Disconnect is disabled');
  assert.equal(await text(a.page, '#reconnect-info'), '', 'no reconnect countdown');
  await screenshot(a.page, '04-disconnected');
  assertClean(a);
});

scenario('05 server killed and restarted: page shows the loss, backs off, reconnects with a new id', 45000, async ({ open }) => {
  const own = await WolfServer.launch();
  try {
    const a = await open(own, { config: { reconnectBaseMs: 300 } });
    const id1 = await waitConnected(a.page);
    await subscribe(a.page);
    const before = await waitFeedAtLeast(a.page, 1);

    const killed = await own.stop({ signal: 'SIGKILL' });
    assert.equal(killed.signal, 'SIGKILL');
    await waitState(a.page, 'reconnecting', 5000);
    await a.page.waitForFunction(() => /^closed: \d{4}\b/.test(document.getElementById('close-info').textContent),
      null, { timeout: 5000 });
    const closeInfo = await text(a.page, '#close-info');
    assert.match(closeInfo, /^closed: (1006|1001|1011|1012)\b/, `#close-info shows the loss: ${closeInfo}`);
    assert.equal(await text(a.page, '#subscription'), 'not subscribed', 'subscription is gone with the socket');

    // Stay down until at least two attempts failed; #reconnect-info names the attempt.
    await a.page.waitForFunction(() => {
      const m = /attempt (\d+)/.exec(document.getElementById('reconnect-info').textContent);
      return m && Number(m[1]) >= 3; // attempt 3 scheduled == attempts 1 and 2 failed
    }, null, { timeout: 15000, polling: 25 });
    assert.match(await text(a.page, '#reconnect-info'), /^reconnecting in \d+ s \(attempt \d+\)$/);
    assert.equal(await text(a.page, '#state'), 'reconnecting');
    // Backoff: the scheduled delays grow (300 ms base, doubling, +-10 % jitter).
    const delays = await a.page.evaluate(() => Array.from(document.querySelectorAll('#log li span'))
      .map((s) => /^reconnect attempt (\d+) in ([\d.]+) s$/.exec(s.textContent))
      .filter(Boolean).map((m) => ({ attempt: Number(m[1]), s: Number(m[2]) })).reverse());
    assert.ok(delays.length >= 3, `three attempts scheduled: ${JSON.stringify(delays)}`);
    for (let i = 1; i < delays.length; i++) {
      assert.equal(delays[i].attempt, delays[i - 1].attempt + 1);
      assert.ok(delays[i].s > delays[i - 1].s, `backoff grows: ${JSON.stringify(delays)}`);
    }
    await screenshot(a.page, '05-server-down');

    // Back on the same port (retry briefly if the port is not free yet).
    const restartedAt = own.mark();
    await waitUntil(async () => {
      try { await own.start(); return true; } catch (e) { return false; }
    }, { timeout: 10000, every: 200, what: 'the server to restart on the same port' });
    const id2 = await waitConnected(a.page, 20000);
    assert.notEqual(id2, id1, 'the new connection has a new id');
    assert.equal(await text(a.page, '#close-info'), '', 'close info cleared on reconnect');
    assert.equal(await text(a.page, '#reconnect-info'), '', 'reconnect countdown cleared');
    // It was subscribed when the connection was lost: it subscribes again by itself, from the last quote
    // it showed. The restarted server numbers another sequence (epoch), so the page reports a gap.
    const countBefore = before;
    await a.page.locator('#subscription[data-subscribed="true"]').waitFor({ state: 'attached' });
    await a.page.waitForFunction(() => Array.from(document.querySelectorAll('#log li span'))
      .some((s) => s.textContent.startsWith('gap: ')), null, { timeout: 5000 });
    await waitFeedAtLeast(a.page, countBefore + 1, 2 * INTERVAL_MS + 4000);
    const snap = await snapshot(a.page); // one read: another tick may land any moment
    assert.ok(snap.count > countBefore && snap.latest.length > 0, 'a fresh quote is shown');
    assert.equal(snap.newestFeed, snap.latest, 'the newest feed entry is the latest quote');
    assert.equal(snap.subscription, 'subscribed');
    await own.waitForLine(new RegExp(`\\bsubscribe id=${escapeRe(id2)}\\b`), { from: restartedAt });
    await own.waitForLine(/\btick number=\d+ recipients=1\b/, { from: restartedAt });
    await screenshot(a.page, '05-reconnected');
    // Chromium reports each refused WebSocket attempt as a console error; that is the point here.
    assertClean(a, { allowConsole: [/WebSocket connection to .* failed/] });
  } finally {
    await own.stop();
  }
});

scenario('08 a fresh page shows the latest quote right after Subscribe', 30000, async ({ open }) => {
  const a = await open(server);
  await waitConnected(a.page);
  const initialOffset = await a.page.evaluate(() => window.wolf.initialOffset);
  assert.ok(initialOffset >= 1, `the shared server has broadcast before: offset ${initialOffset}`);
  await subscribe(a.page);
  await waitFeedAtLeast(a.page, 1, 2000);
  // The first quote is the latest one at connect, sent again at once, not the next tick.
  const first = await a.page.evaluate(() => Number(document.querySelector('#feed > li:last-child').dataset.offset));
  assert.equal(first, initialOffset, 'the first quote shown is the latest broadcast, recovered');
  await a.page.waitForFunction(() => Array.from(document.querySelectorAll('#log li span'))
    .some((s) => s.textContent === 'the latest quote follows'), null, { timeout: 2000 });
  assertClean(a);
});

scenario('09 a connection dropped under the page: it reconnects and recovers every quote once, in order', 45000, async ({ open }) => {
  const proxy = await new TcpProxy(server).restore();
  try {
    const a = await open(proxy, { config: { reconnectBaseMs: 300 } });
    await waitConnected(a.page);
    await subscribe(a.page);
    await waitFeedAtLeast(a.page, 2);
    const away = server.mark();
    await proxy.cut();
    await waitState(a.page, 'reconnecting', 5000);
    const before = await feedCount(a.page);
    // Ticks go on while the page is away: three of them, by the server's own tick lines.
    await waitUntil(() => server.grep(/\btick number=/, away).length >= 3 || null,
      { timeout: 10 * INTERVAL_MS, every: 25, what: 'three ticks while the page is away' });
    assert.equal(await feedCount(a.page), before, 'nothing arrives while away');
    await proxy.restore();
    await waitConnected(a.page, 15000);
    await a.page.locator('#subscription[data-subscribed="true"]').waitFor({ state: 'attached' });
    const recovered = await waitUntil(() => a.page.evaluate(() => {
      const line = Array.from(document.querySelectorAll('#log li span'))
        .map((s) => /^recovered (\d+) quotes? missed while away$/.exec(s.textContent)).find(Boolean);
      return line ? Number(line[1]) : null;
    }), { timeout: 5000, what: 'the log line of the recovery' });
    assert.ok(recovered >= 3, `recovered ${recovered} quotes`);
    await waitFeedAtLeast(a.page, before + recovered + 1, 2 * INTERVAL_MS + 4000);
    // Every quote once, in order: the feed's offsets (newest first) go down by one each.
    const offsets = await a.page.evaluate(() => Array.from(document.querySelectorAll('#feed > li'))
      .map((li) => Number(li.dataset.offset)));
    for (let i = 1; i < offsets.length; i++)
      assert.equal(offsets[i], offsets[i - 1] - 1, `feed offsets ${JSON.stringify(offsets)}`);
    assert.ok(offsets.length >= before + recovered + 1);
    await screenshot(a.page, '09-recovered');
    // Chromium reports the refused WebSocket attempts as console errors; that is the point here.
    assertClean(a, { allowConsole: [/WebSocket connection to .* failed/] });
  } finally {
    await proxy.cut().catch(() => {});
  }
});

scenario('06 keep-alive: a pinging page survives 16 s, a silent one is evicted with 4000 ping timeout', 45000, async ({ open }) => {
  const own = await WolfServer.launch(); // --ping-timeout 7s
  try {
    const [p, q] = await Promise.all([
      open(own), // default: ping every 5 s
      // No pings; a long reconnect delay keeps the close visible for the assertion and screenshot.
      open(own, { config: { pingIntervalMs: 0, reconnectBaseMs: 60000 } }),
    ]);
    const [idP, idQ] = await Promise.all([waitConnected(p.page), waitConnected(q.page)]);
    const connectedAt = Date.now();
    assert.equal(await p.page.evaluate(() => window.wolf.config.pingIntervalMs), 5000);
    assert.equal(await q.page.evaluate(() => window.wolf.config.pingIntervalMs), 0);

    // The silent page: evicted after ~7 s with 4000 "ping timeout".
    await q.page.waitForFunction(() => /\b4000\b/.test(document.getElementById('close-info').textContent),
      null, { timeout: (PING_TIMEOUT_S + 5) * 1000, polling: 50 });
    assert.equal(await text(q.page, '#close-info'), 'closed: 4000 ping timeout');
    assert.equal(await text(q.page, '#state'), 'reconnecting', 'an unexpected close leads to reconnecting');
    const evictLine = await own.waitForLine(new RegExp(`\\bevict id=${escapeRe(idQ)} reason=ping_timeout\\b`));
    // Timing from the server's own clock: its last valid event was `connect`, right after `initial`.
    const connectLine = own.find(new RegExp(`\\bconnect id=${escapeRe(idQ)}\\b`));
    const evictedAfter = logTime(evictLine) - logTime(connectLine);
    assert.ok(evictedAfter >= PING_TIMEOUT_S * 1000 - 250 && evictedAfter <= PING_TIMEOUT_S * 1000 + 2500,
      `evicted about ${PING_TIMEOUT_S} s after its last event (${evictedAfter} ms)`);
    assert.deepEqual((await sentTypes(q.page)).filter((t) => t === 'ping'), [], 'the silent page sent no ping');
    await screenshot(q.page, '06-silent-evicted');

    // The pinging page: still there 16 s after connecting (this wait is the behaviour under test).
    const remaining = 16000 - (Date.now() - connectedAt);
    if (remaining > 0) await sleep(remaining);
    assert.equal(await text(p.page, '#state'), 'connected');
    assert.equal(await text(p.page, '#client-id'), idP, 'same id: never reconnected');
    assert.equal(p.sockets.length, 1, 'one WebSocket for the whole time');
    assert.equal(await text(p.page, '#close-info'), '');
    const pings = (await sentTypes(p.page)).filter((t) => t === 'ping').length;
    assert.ok(pings >= 3, `pinging page sent a ping every 5 s (${pings} in 16 s)`);
    assert.deepEqual(own.grep(new RegExp(`\\bevict id=${escapeRe(idP)}\\b`)), [], 'no eviction logged for the pinging page');
    await screenshot(p.page, '06-pinging-alive');
    console.log(`# 06: silent page evicted after ${evictedAfter} ms; pinging page sent ${pings} pings in 16 s`);
    assertClean(p);
    assertClean(q);
  } finally {
    await own.stop();
  }
});

scenario('07 phone viewport 390x844: all buttons visible, no horizontal scrolling', 30000, async ({ open }) => {
  const width = 390;
  const a = await open(server, {
    context: { viewport: { width, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  });
  await waitConnected(a.page);
  await subscribe(a.page);
  await waitFeedAtLeast(a.page, 3); // real content: long quotes in the feed and the latest card
  assert.equal(await a.page.evaluate(() => window.innerWidth), width);
  for (const sel of ['#btn-subscribe', '#btn-unsubscribe', '#btn-disconnect', '#btn-reconnect']) {
    const btn = a.page.locator(sel);
    assert.ok(await btn.isVisible(), `${sel} is visible`);
    const box = await btn.boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, `${sel} has a size`);
    assert.ok(box.x >= 0 && box.x + box.width <= width + 0.5,
      `${sel} fits the viewport width: x=${box.x} w=${box.width}`);
  }
  const dims = await a.page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    bodyScrollWidth: document.body.scrollWidth,
  }));
  assert.ok(dims.scrollWidth <= dims.innerWidth, `no horizontal scrolling: ${JSON.stringify(dims)}`);
  assert.ok(dims.bodyScrollWidth <= dims.innerWidth, `body does not overflow: ${JSON.stringify(dims)}`);
  // body has overflow-x: hidden, which would hide (not prevent) overflow: check every element too.
  const sticking = await a.page.evaluate(() => Array.from(document.body.querySelectorAll('*'))
    .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -0.5 || r.right > window.innerWidth + 0.5); })
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className ? '.' + String(e.className).split(' ').join('.') : ''}`));
  assert.deepEqual(sticking, [], 'no element sticks out of the viewport horizontally');
  await screenshot(a.page, '07-phone');
  assertClean(a);
});
