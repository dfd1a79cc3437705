/* Wolf Wisdom — browser client. Plain JS, no build step. Protocol: PROTOCOL.md. */
(function () {
  'use strict';

  var cfg = (typeof window.WOLF_CONFIG === 'object' && window.WOLF_CONFIG) || {};
  var params = new URLSearchParams(location.search);

  function numOr(v, dflt) {
    var n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    return typeof n === 'number' && isFinite(n) ? n : dflt;
  }

  // Ping interval: ?ping=N (ms) beats WOLF_CONFIG.pingIntervalMs beats 5000. <= 0 disables pings.
  var PING_MS = numOr(params.get('ping'), numOr(cfg.pingIntervalMs, 5000));
  var BASE_MS = Math.max(1, numOr(params.get('reconnect'), numOr(cfg.reconnectBaseMs, 1000)));
  var MAX_BACKOFF_MS = 30000;
  var DISCONNECT_GRACE_MS = 3000;
  var FEED_MAX = 50;
  var LOG_MAX = 100;

  var CLOSE_NAMES = {
    1000: 'normal closure', 1001: 'going away', 1002: 'protocol error',
    1003: 'unsupported data', 1005: 'no status received', 1006: 'abnormal closure',
    1007: 'invalid payload data', 1008: 'policy violation', 1009: 'message too big',
    1010: 'mandatory extension', 1011: 'internal error', 1012: 'service restart',
    1013: 'try again later', 1015: 'TLS handshake failure'
  };

  function $(id) { return document.getElementById(id); }
  var el = {
    state: $('state'), id: $('client-id'), sub: $('subscription'), subHint: $('sub-hint'),
    closeInfo: $('close-info'), reconnectInfo: $('reconnect-info'),
    latest: $('latest-quote'), latestTime: $('latest-time'),
    feed: $('feed'), feedCount: $('feed-count'), log: $('log'),
    bSub: $('btn-subscribe'), bUnsub: $('btn-unsubscribe'),
    bDisc: $('btn-disconnect'), bRecon: $('btn-reconnect')
  };

  var s = {
    state: 'connecting',
    id: '',
    ws: null,
    subscribed: false,
    pending: false,      // subscribe sent, confirmation not yet received
    wantSubscribed: false, // the user pressed Subscribe (and not Unsubscribe): resubscribe after a reconnect
    serverEpoch: '',     // the latest position, as `initial` gave it
    serverOffset: 0,
    epoch: '',           // the sequence the feed's quotes belong to
    lastOffset: null,    // the offset of the last quote shown (null: none yet)
    since: null,         // the position the pending subscribe recovers from
    userClosed: false,   // the user pressed Disconnect: never auto-reconnect
    attempt: 0,          // consecutive reconnect attempts since the last `initial`
    received: 0,
    pingTimer: null,
    reconnectTimer: null,
    countdownTimer: null,
    graceTimer: null,
    reconnectAt: 0
  };

  function pad(n) { return (n < 10 ? '0' : '') + n; }
  function hms(d) { return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()); }

  function trim(list, max) {
    while (list.children.length > max) list.removeChild(list.lastElementChild);
  }

  function log(kind, text) {
    var li = document.createElement('li');
    li.className = 'log-' + kind;
    var t = document.createElement('time');
    t.textContent = hms(new Date());
    var span = document.createElement('span');
    span.textContent = text;
    li.appendChild(t);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(span);
    el.log.insertBefore(li, el.log.firstChild);
    trim(el.log, LOG_MAX);
  }

  function short(v) {
    var str;
    try { str = typeof v === 'string' ? v : JSON.stringify(v); } catch (e) { str = String(v); }
    return str.length > 160 ? str.slice(0, 157) + '...' : str;
  }

  function render() {
    var st = s.state;
    el.state.textContent = st;
    el.state.setAttribute('data-state', st);
    el.id.textContent = s.id;
    el.id.title = s.id;
    el.sub.textContent = s.subscribed ? 'subscribed' : 'not subscribed';
    el.sub.setAttribute('data-subscribed', String(s.subscribed));
    el.subHint.textContent = s.pending && !s.subscribed ? 'waiting for confirmation…' : '';
    var live = st === 'connected';
    el.bSub.disabled = !live || s.subscribed || s.pending;
    el.bUnsub.disabled = !live || !(s.subscribed || s.pending);
    el.bDisc.disabled = st === 'closed';
    el.bRecon.disabled = !(st === 'closed' || st === 'reconnecting');
    el.bRecon.textContent = st === 'reconnecting' ? 'Reconnect now' : 'Reconnect';
    document.body.setAttribute('data-state', st);
  }

  function setState(st) { s.state = st; render(); }

  function describeClose(code, reason) {
    var txt = 'closed: ' + code;
    if (reason) txt += ' ' + reason;
    else if (CLOSE_NAMES[code]) txt += ' (' + CLOSE_NAMES[code] + ')';
    return txt;
  }

  // ---- sending ----------------------------------------------------------
  function send(type, extra) {
    var ws = s.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      if (type !== 'ping') log('warn', 'not sent (socket not open): ' + type);
      return false;
    }
    var payload = { id: s.id };
    if (extra && typeof extra === 'object') {
      for (var k in extra) if (Object.prototype.hasOwnProperty.call(extra, k)) payload[k] = extra[k];
    }
    try {
      ws.send(JSON.stringify({ type: String(type), payload: payload }));
    } catch (e) {
      log('warn', 'send failed: ' + type + ' (' + e.message + ')');
      return false;
    }
    log(type === 'ping' ? 'ping' : 'sent', '→ ' + type);
    return true;
  }

  function startPing() {
    stopPing();
    if (PING_MS > 0) s.pingTimer = setInterval(function () { send('ping'); }, PING_MS);
  }
  function stopPing() {
    if (s.pingTimer !== null) { clearInterval(s.pingTimer); s.pingTimer = null; }
  }

  // ---- connection lifecycle ----------------------------------------------
  function clearReconnect() {
    if (s.reconnectTimer !== null) { clearTimeout(s.reconnectTimer); s.reconnectTimer = null; }
    if (s.countdownTimer !== null) { clearInterval(s.countdownTimer); s.countdownTimer = null; }
    el.reconnectInfo.textContent = '';
  }

  function open() {
    clearReconnect();
    stopPing();
    var old = s.ws;
    s.ws = null; // events of the old socket are ignored from here on
    if (old && old.readyState < 2) { try { old.close(1000, 'client reconnect'); } catch (e) { /* ignore */ } }
    s.userClosed = false;
    s.id = '';
    s.subscribed = false;
    s.pending = false;
    setState('connecting');
    var url = (location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws';
    var ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      log('err', 'cannot open ' + url + ': ' + e.message);
      s.ws = null;
      scheduleReconnect();
      return;
    }
    s.ws = ws;
    log('info', 'opening ' + url + (s.attempt ? ' (attempt ' + s.attempt + ')' : ''));
    ws.onopen = function () { if (ws === s.ws) log('info', 'socket open, waiting for initial'); };
    ws.onmessage = function (ev) { if (ws === s.ws) onMessage(ev.data); };
    ws.onerror = function () { if (ws === s.ws) log('warn', 'socket error'); };
    ws.onclose = function (ev) { if (ws === s.ws) onClose(ev); };
  }

  function onClose(ev) {
    stopPing();
    if (s.graceTimer !== null) { clearTimeout(s.graceTimer); s.graceTimer = null; }
    var info = describeClose(ev.code, ev.reason);
    el.closeInfo.textContent = info;
    s.subscribed = false;
    s.pending = false;
    log('close', info + (ev.wasClean ? '' : ' [not clean]'));
    if (s.userClosed) {
      setState('closed');
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearReconnect();
    s.attempt += 1;
    var delay = Math.min(MAX_BACKOFF_MS, BASE_MS * Math.pow(2, s.attempt - 1));
    delay = Math.round(Math.min(MAX_BACKOFF_MS, delay * (0.9 + Math.random() * 0.2)));
    s.reconnectAt = Date.now() + delay;
    setState('reconnecting');
    var attempt = s.attempt;
    var tick = function () {
      var left = Math.max(0, s.reconnectAt - Date.now());
      el.reconnectInfo.textContent = 'reconnecting in ' + Math.ceil(left / 1000) + ' s (attempt ' + attempt + ')';
    };
    tick();
    s.countdownTimer = setInterval(tick, 250);
    s.reconnectTimer = setTimeout(function () { s.reconnectTimer = null; open(); }, delay);
    log('info', 'reconnect attempt ' + attempt + ' in ' + (delay / 1000).toFixed(1) + ' s');
  }

  function disconnect() {
    var ws = s.ws;
    s.userClosed = true;
    s.wantSubscribed = false;
    stopPing();
    if (s.state === 'reconnecting' || !ws) {
      clearReconnect();
      s.ws = null;
      log('info', 'reconnect cancelled by user');
      setState('closed');
      return;
    }
    if (s.state === 'connected' && ws.readyState === WebSocket.OPEN) {
      send('disconnect');
      // The server closes with 1000; if it does not within the grace period, close ourselves.
      s.graceTimer = setTimeout(function () {
        s.graceTimer = null;
        if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'client disconnect');
      }, DISCONNECT_GRACE_MS);
    } else {
      try { ws.close(1000, 'client disconnect'); } catch (e) { /* ignore */ }
    }
    render();
  }

  // ---- receiving -----------------------------------------------------------
  function onMessage(data) {
    if (typeof data !== 'string') { log('err', '← binary frame ignored'); return; }
    var msg;
    try { msg = JSON.parse(data); } catch (e) { log('err', '← malformed (not JSON): ' + short(data)); return; }
    if (!msg || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.type !== 'string') {
      log('err', '← malformed (no type): ' + short(data));
      return;
    }
    var p = msg.payload && typeof msg.payload === 'object' ? msg.payload : {};
    try {
      handle(msg.type, p, data);
    } catch (e) {
      log('err', '← failed to handle ' + msg.type + ': ' + e.message);
    }
  }

  function handle(type, p, raw) {
    switch (type) {
      case 'initial':
        if (typeof p.id !== 'string' || !p.id) { log('err', '← malformed initial: ' + short(raw)); return; }
        s.id = p.id;
        s.attempt = 0;
        s.subscribed = false;
        s.pending = false;
        s.serverEpoch = typeof p.epoch === 'string' ? p.epoch : '';
        s.serverOffset = typeof p.offset === 'number' ? p.offset : 0;
        el.closeInfo.textContent = '';
        log('recv', '← initial ' + p.id);
        setState('connected');
        send('connect');
        startPing();
        // Back after an unexpected close: subscribe again from the last quote shown, so none is missed.
        if (s.wantSubscribed) subscribe();
        return;
      case 'subscribe_confirmation':
        log('recv', '← subscribe_confirmation ' + short(p.status === undefined ? '' : p.status));
        s.subscribed = true;
        s.pending = false;
        onRecovery(p);
        render();
        return;
      case 'wisdom_distribution':
        if (typeof p.message !== 'string') { log('err', '← malformed wisdom_distribution: ' + short(raw)); return; }
        addQuote(p.message, typeof p.offset === 'number' ? p.offset : null);
        return;
      case 'error':
        log('err', '← error ' + short(p.code === undefined ? '?' : p.code) + ': ' + short(p.message === undefined ? '' : p.message));
        if (p.code === 'not_connected' && s.pending) { s.pending = false; render(); }
        return;
      default:
        log('warn', '← unknown event: ' + short(raw));
    }
  }

  // Subscribes from the last quote shown, or (the first time) from one before the latest broadcast, so the
  // latest quote shows at once. The epoch is the one the confirmation named, even "" (a cluster node that
  // had not reached Redis yet): a server in another epoch then answers that the quotes in between are lost.
  function subscribe() {
    var since = s.lastOffset !== null
      ? { epoch: s.epoch, offset: s.lastOffset }
      : { epoch: s.serverEpoch, offset: Math.max(0, s.serverOffset - 1) };
    if (send('subscribe', { since: since })) {
      s.since = since;
      s.pending = true;
      render();
    }
  }

  // The confirmation of a subscribe with `since`: how many quotes follow at once, or that some are lost.
  function onRecovery(p) {
    var since = s.since;
    s.since = null;
    if (!since || typeof p.recovered !== 'boolean') return;
    var first = s.lastOffset === null;
    if (p.recovered) {
      var missed = Math.max(0, (typeof p.offset === 'number' ? p.offset : 0) - since.offset);
      s.epoch = since.epoch;
      if (first) { if (missed > 0) log('info', 'the latest quote follows'); }
      else log('info', 'recovered ' + missed + (missed === 1 ? ' quote' : ' quotes') + ' missed while away');
    } else {
      s.epoch = typeof p.epoch === 'string' ? p.epoch : '';
      if (!first) log('warn', 'gap: quotes broadcast while away are lost (no longer kept, or another epoch)');
    }
  }

  function addQuote(text, offset) {
    var now = new Date();
    if (offset !== null) s.lastOffset = offset;
    s.received += 1;
    el.feedCount.textContent = String(s.received);
    el.latest.textContent = text;
    el.latest.classList.remove('fresh');
    void el.latest.offsetWidth; // restart the fade-in animation
    el.latest.classList.add('fresh');
    el.latestTime.textContent = 'received at ' + hms(now);
    var li = document.createElement('li');
    if (offset !== null) li.setAttribute('data-offset', String(offset));
    var q = document.createElement('q');
    q.className = 'feed-text';
    q.textContent = text;
    var t = document.createElement('time');
    t.textContent = hms(now);
    li.appendChild(t);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(q);
    el.feed.insertBefore(li, el.feed.firstChild);
    trim(el.feed, FEED_MAX);
    log('recv', '← wisdom #' + s.received);
  }

  // ---- controls ----------------------------------------------------------------
  el.bSub.addEventListener('click', function () {
    s.wantSubscribed = true;
    subscribe();
  });
  el.bUnsub.addEventListener('click', function () {
    send('unsubscribe');
    s.wantSubscribed = false;
    s.subscribed = false;
    s.pending = false;
    render();
  });
  el.bDisc.addEventListener('click', disconnect);
  el.bRecon.addEventListener('click', function () {
    log('info', 'reconnect requested by user');
    s.attempt = 0;
    open();
  });

  // Background tabs may throttle timers; send a liveness ping as soon as we are visible again.
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && s.state === 'connected' && s.pingTimer !== null) send('ping');
  });

  window.wolf = {
    get state() { return s.state; },
    get id() { return s.id; },
    get ws() { return s.ws; },
    get subscribed() { return s.subscribed; },
    get received() { return s.received; },
    get epoch() { return s.epoch; },
    get lastOffset() { return s.lastOffset; },
    get initialOffset() { return s.serverOffset; },
    config: { pingIntervalMs: PING_MS, reconnectBaseMs: BASE_MS },
    stopPing: stopPing,
    startPing: startPing,
    send: send,
    disconnect: disconnect,
    reconnect: function () { s.attempt = 0; open(); }
  };

  render();
  open();
})();
