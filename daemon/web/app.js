// gravity-led phone page: devicemotion -> WebSocket -> the daemon's two LEDs.
// No build step, no dependencies.  See the README, "Any phone is a client".
'use strict';

(() => {
  const BUSY_CODE = 1013; // the daemon's "Try Again Later": another client holds the LEDs
  const BUSY_REASON = 'LEDs in use by another client';
  const TELEMETRY_HZ = 10;
  const NO_DATA_MS = 3000; // no sensor reading this long after Start = no sensor
  const BUSY_RETRY_MS = 5000;
  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000]; // then stays at the last, +-20 % jitter
  const STABLE_MS = 3000; // a connection open this long resets the backoff
  const MAX_BUFFERED = 240; // bytes queued in the socket: skip frames rather than lag

  // ---------------------------------------------------------------------------
  // Axes.  Everything is normalised to the W3C DeviceOrientation convention,
  // which is also Android's: device frame, x to the right of the screen in its
  // natural orientation, y to its top, z out of the screen; the value is the
  // reaction to gravity, so a phone lying face up reads (0, 0, +9.81) and one
  // held upright reads (0, +9.81, 0).  WebKit (every browser on iOS/iPadOS)
  // reports the opposite sign on all three axes, so it is negated there.
  // The vector is then turned into the frame of the screen as the user sees it
  // (screen.orientation.angle) and rotated a quarter turn about z for the
  // daemon, whose default axis is y with right = +y:
  //     sent = (screen_y, -screen_x, z)
  // Rolling the phone to the right (right edge down, lying flat or held like a
  // steering wheel) makes screen_x negative, so the daemon's y goes positive
  // and the right LED lights.  In landscape-primary this is exactly the raw
  // Android vector the article's app sent.  The rotation keeps the vector's
  // length, so y/|v| is still the sine of the roll.

  function screenAngle() {
    const o = window.screen && window.screen.orientation;
    let a = o && typeof o.angle === 'number' ? o.angle
      : typeof window.orientation === 'number' ? window.orientation : 0;
    a = ((Math.round(a) % 360) + 360) % 360;
    return a;
  }

  function isWebKitMotion() {
    const ua = navigator.userAgent || '';
    if (/iPhone|iPad|iPod/.test(ua)) return true;
    // iPadOS asks for desktop pages by default and then says "Macintosh".
    // (DeviceMotionEvent.requestPermission is no sign of WebKit: Chromium has it too.)
    return /Macintosh/.test(ua) && navigator.maxTouchPoints > 1;
  }

  // A component tiny enough to be noise is sent as 0, and none is larger than
  // 1000 m/s^2: then no float32 frame can consist only of the bytes the daemon
  // would read as a text frame ("0-9 + - . e E , space").
  function clean(c) {
    if (Math.abs(c) < 1e-3) return 0;
    return Math.max(-1000, Math.min(1000, c));
  }

  // g: {x, y, z} as the browser gives it.  Returns [x, y, z] for the daemon,
  // or null when there is nothing usable.
  function toDaemon(g, angle, webkit, swap) {
    if (!g) return null;
    let x = g.x, y = g.y, z = g.z;
    if (![x, y, z].every((c) => typeof c === 'number' && Number.isFinite(c))) return null;
    if (webkit) { x = -x; y = -y; z = -z; }
    let sx, sy;
    switch (angle) {
      case 0: sx = x; sy = y; break;
      case 90: sx = -y; sy = x; break;
      case 180: sx = -x; sy = -y; break;
      case 270: sx = y; sy = -x; break;
      default: {
        const r = angle * Math.PI / 180;
        sx = x * Math.cos(r) - y * Math.sin(r);
        sy = x * Math.sin(r) + y * Math.cos(r);
      }
    }
    const d = [clean(sy), clean(-sx), clean(z)];
    if (swap) d[1] = -d[1];
    if (d[0] === 0 && d[1] === 0 && d[2] === 0) return null;
    return d;
  }

  // Roll in degrees, right positive: the angle whose sine the daemon uses.
  function tiltDeg(d) {
    const n = Math.hypot(d[0], d[1], d[2]);
    return Math.asin(Math.max(-1, Math.min(1, d[1] / n))) * 180 / Math.PI;
  }

  function frame(d) {
    const buf = new ArrayBuffer(12);
    const view = new DataView(buf);
    view.setFloat32(0, d[0], true);
    view.setFloat32(4, d[1], true);
    view.setFloat32(8, d[2], true);
    return buf;
  }

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const token = new URLSearchParams(location.search).get('token');
    return scheme + location.host + '/' + (token ? '?token=' + encodeURIComponent(token) : '');
  }

  // ---------------------------------------------------------------------------
  // Page.
  const $ = (id) => document.getElementById(id);
  const ui = {
    start: $('start'), conn: $('conn'), connText: $('conn-text'),
    notice: $('notice'), noticeTitle: $('notice-title'), noticeText: $('notice-text'), noticeExtra: $('notice-extra'),
    tiltText: $('tilt-text'), tiltFill: $('tilt-fill'), tiltTrack: $('tilt-track'),
    ledsNote: $('leds-note'), foot: $('foot'), swap: $('swap'), help: $('https-help'),
    left: { fill: $('fill-left'), pct: $('pct-left'), bulb: $('big-left'), track: $('track-left') },
    right: { fill: $('fill-right'), pct: $('pct-right'), bulb: $('big-right'), track: $('track-right') },
    phone: $('phone'),
  };

  const s = {
    running: false, // the user tapped Start and not Stop
    paused: false, // running, but the page is hidden: sensor and socket released
    ws: null, openedAt: 0, attempt: 0, retryTimer: 0, noDataTimer: 0, noticeTimer: 0,
    gotData: false, everOpen: false, latest: null, drawPending: false,
    sent: 0, sentAtTick: 0, rate: 0, tick: 0, leds: null, wakeLock: null,
    webkit: isWebKitMotion(), swap: false, notice: null,
  };

  try { s.swap = localStorage.getItem('gravity-led.swap') === '1'; } catch (e) { /* private mode */ }
  ui.swap.checked = s.swap;
  ui.swap.addEventListener('change', () => {
    s.swap = ui.swap.checked;
    try { localStorage.setItem('gravity-led.swap', s.swap ? '1' : '0'); } catch (e) { /* ignore */ }
  });

  function setConn(state, text) {
    ui.conn.dataset.state = state;
    ui.connText.textContent = text;
  }

  // One notice at a time; `kind` lets a later event clear only its own notice.
  function showNotice(kind, level, title, text, extra) {
    clearTimeout(s.noticeTimer);
    s.notice = kind;
    ui.notice.dataset.level = level;
    ui.noticeTitle.textContent = title;
    ui.noticeText.textContent = text;
    ui.noticeExtra.replaceChildren();
    ui.noticeExtra.hidden = !extra;
    if (extra) ui.noticeExtra.append(...extra);
    ui.notice.hidden = false;
  }

  function clearNotice(...kinds) {
    if (s.notice && (kinds.length === 0 || kinds.includes(s.notice))) {
      s.notice = null;
      ui.notice.hidden = true;
    }
  }

  function link(text, href, onclick) {
    const a = document.createElement('a');
    a.textContent = text;
    a.href = href;
    if (onclick) a.addEventListener('click', onclick);
    return a;
  }

  const helpLink = () => link('Help', '#https-help', () => { ui.help.open = true; });

  function showInsecure() {
    const https = 'https://' + location.host + location.pathname + location.search;
    showNotice('insecure', 'error', 'This page needs HTTPS',
      'Phones only share motion sensors with pages opened over https:// (or on localhost), and this one came over plain http://, so tilting will do nothing.',
      ['Start the daemon with a certificate (gravity-led-daemon make-cert, see "Any phone is a client" in the README) and open ',
        link(https, https), '. ', helpLink(), '.']);
  }

  // ---- LEDs and tilt display -------------------------------------------------
  function showLed(side, duty) {
    const u = ui[side];
    if (duty == null || !Number.isFinite(duty)) {
      u.fill.style.width = '0%';
      u.pct.textContent = '\u2013';
      u.bulb.style.setProperty('--level', 0);
      u.track.setAttribute('aria-valuenow', '0');
      return;
    }
    const pct = Math.round(Math.max(0, Math.min(1, duty)) * 100);
    u.fill.style.width = pct + '%';
    u.pct.textContent = pct + '%';
    u.bulb.style.setProperty('--level', Math.max(0, Math.min(1, duty)).toFixed(3));
    u.track.setAttribute('aria-valuenow', String(pct));
  }

  function showLeds(leds) {
    s.leds = leds;
    showLed('right', leds ? leds.right : null);
    showLed('left', leds ? leds.left : null);
    ui.ledsNote.textContent = leds ? 'live' : 'no data';
  }

  function draw() {
    s.drawPending = false;
    const d = s.latest;
    if (!d) {
      ui.phone.style.transform = 'rotate(0deg)';
      ui.tiltText.textContent = '\u2013';
      ui.tiltFill.style.left = '50%';
      ui.tiltFill.style.width = '0%';
      return;
    }
    const deg = tiltDeg(d);
    const r = Math.round(deg);
    ui.phone.style.transform = 'rotate(' + deg.toFixed(1) + 'deg)';
    ui.tiltText.textContent = r === 0 ? 'level' : Math.abs(r) + '\u00b0 ' + (r > 0 ? 'right' : 'left');
    const w = Math.abs(deg) / 90 * 50;
    ui.tiltFill.style.left = (deg >= 0 ? 50 : 50 - w) + '%';
    ui.tiltFill.style.width = w + '%';
    ui.tiltTrack.setAttribute('aria-valuenow', String(r));
  }

  function scheduleDraw() {
    if (!s.drawPending) {
      s.drawPending = true;
      requestAnimationFrame(draw);
    }
  }

  function updateFoot() {
    const now = performance.now();
    if (now - s.tick >= 1000) {
      s.rate = Math.round((s.sent - s.sentAtTick) * 1000 / (now - s.tick || 1));
      s.sentAtTick = s.sent;
      s.tick = now;
    }
    const where = wsUrl().replace(/\?.*$/, '');
    ui.foot.textContent = s.ws && s.ws.readyState === WebSocket.OPEN
      ? 'Sending ' + s.rate + ' frames/s to ' + where
      : 'Daemon: ' + where;
  }

  // ---- sensor ----------------------------------------------------------------
  function onMotion(ev) {
    const d = toDaemon(ev.accelerationIncludingGravity, screenAngle(), s.webkit, s.swap);
    if (!d) return; // Chromium without a sensor fires one event of nulls
    if (!s.gotData) {
      s.gotData = true;
      clearTimeout(s.noDataTimer);
      clearNotice('nosensor');
    }
    s.latest = d;
    scheduleDraw();
    const ws = s.ws;
    if (ws && ws.readyState === WebSocket.OPEN && ws.bufferedAmount <= MAX_BUFFERED) {
      ws.send(frame(d));
      s.sent += 1;
    }
  }

  function listen(on) {
    if (on) window.addEventListener('devicemotion', onMotion);
    else window.removeEventListener('devicemotion', onMotion);
  }

  function armNoDataTimer() {
    clearTimeout(s.noDataTimer);
    if (s.gotData) return;
    s.noDataTimer = setTimeout(noData, NO_DATA_MS);
  }

  async function noData() {
    if (!s.running || s.paused || s.gotData) return;
    let denied = false;
    try {
      if (navigator.permissions) {
        const p = await navigator.permissions.query({ name: 'accelerometer' });
        denied = p.state === 'denied';
      }
    } catch (e) { /* this browser does not know the permission name */ }
    if (!s.running || s.paused || s.gotData) return;
    stop();
    if (!window.isSecureContext) {
      showInsecure();
    } else if (denied) {
      showNotice('denied', 'error', 'Motion access is blocked',
        'This browser blocks motion sensors for this site. Allow "Motion sensors" in the site settings (the icon left of the address), then tap Start again.');
    } else {
      showNotice('nosensor', 'error', 'No motion sensor',
        'No tilt readings arrived. This device may have no motion sensor (a desktop computer), or the browser does not give it to web pages. Open this page on a phone.');
    }
  }

  // ---- WebSocket -------------------------------------------------------------
  function connect() {
    clearTimeout(s.retryTimer);
    if (s.ws || !s.running || s.paused) return;
    setConn('connecting', s.attempt ? 'Reconnecting\u2026' : 'Connecting\u2026');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      showNotice('lost', 'error', 'Cannot connect', String(e.message || e));
      return;
    }
    ws.binaryType = 'arraybuffer';
    s.ws = ws;
    s.openedAt = 0;
    ws.onopen = () => {
      if (s.ws !== ws) return;
      s.openedAt = performance.now();
      s.everOpen = true;
      setConn('open', 'Connected');
      clearNotice('busy', 'lost');
      ws.send(JSON.stringify({ type: 'subscribe', rate: TELEMETRY_HZ }));
    };
    ws.onmessage = (ev) => {
      if (s.ws !== ws || typeof ev.data !== 'string') return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'state' && msg.leds) {
        showLeds(msg.leds);
      } else if (msg.type === 'error') {
        if (s.notice && s.notice !== 'frame') return; // never hide a bigger problem
        showNotice('frame', 'warn', 'The daemon rejected a frame',
          String(msg.message || msg.error) + (msg.suppressed ? ' (and ' + msg.suppressed + ' more)' : ''));
        s.noticeTimer = setTimeout(() => clearNotice('frame'), 5000);
      }
    };
    ws.onclose = (ev) => {
      if (s.ws !== ws) return; // we closed it on purpose
      s.ws = null;
      showLeds(null);
      if (!s.running || s.paused) return;
      const wasOpen = s.openedAt > 0;
      if (wasOpen && performance.now() - s.openedAt >= STABLE_MS) s.attempt = 0;
      if (ev.code === BUSY_CODE) {
        setConn('busy', 'Busy');
        showNotice('busy', 'warn', ev.reason || BUSY_REASON,
          'Another phone or program is driving the LEDs. This page takes over as soon as they are free: it asks again every ' +
          BUSY_RETRY_MS / 1000 + ' s.');
        retry(BUSY_RETRY_MS);
        return;
      }
      const base = BACKOFF_MS[Math.min(s.attempt, BACKOFF_MS.length - 1)];
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      s.attempt += 1;
      setConn('lost', 'Offline');
      const again = ' Retrying in ' + (delay / 1000).toFixed(1) + ' s.';
      if (wasOpen) {
        const why = ev.reason ? ' It said: \u201c' + ev.reason + '\u201d (code ' + ev.code + ').' : '';
        showNotice('lost', 'error', 'Connection to the daemon lost',
          'The daemon at ' + location.host + ' closed the connection or went away.' + why + again);
        retry(delay);
        return;
      }
      // The handshake failed: gone, or refused (a token or origin)?  Ask over HTTP.
      diagnose().then((why) => {
        if (s.ws || !s.running || s.paused) return;
        if (why === 'token') {
          stop();
          const hasToken = new URLSearchParams(location.search).has('token');
          showNotice('token', 'error', hasToken ? 'Wrong token' : 'The daemon needs a token',
            'This daemon only accepts clients that know its secret token. Open the page as ' +
            location.origin + '/?token=SECRET, with the token from the daemon\u2019s token_file.');
          return;
        }
        showNotice('lost', 'error', s.everOpen ? 'Connection to the daemon lost' : 'Cannot reach the daemon',
          (why === 'refused'
            ? 'The daemon at ' + location.host + ' is running but refused the connection (its log says why).'
            : 'Nothing answers at ' + location.host + ': the daemon is stopped or restarting, or this phone left its network.') + again);
        retry(delay);
      });
    };
  }

  // After a failed handshake: 'gone' (no answer), 'token' (401) or 'refused'.
  async function diagnose() {
    try {
      const r = await fetch('/status' + location.search, { cache: 'no-store' });
      return r.status === 401 ? 'token' : 'refused';
    } catch (e) {
      return 'gone';
    }
  }

  function retry(ms) {
    clearTimeout(s.retryTimer);
    s.retryTimer = setTimeout(connect, ms);
  }

  function disconnect(reason) {
    clearTimeout(s.retryTimer);
    const ws = s.ws;
    s.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, reason);
    showLeds(null);
  }

  // ---- wake lock: keep the screen on while driving the LEDs --------------------
  function keepAwake(on) {
    if (!on) {
      if (s.wakeLock) s.wakeLock.release().catch(() => {});
      s.wakeLock = null;
      return;
    }
    if (s.wakeLock || !navigator.wakeLock || document.hidden) return;
    navigator.wakeLock.request('screen').then((l) => { s.wakeLock = l; }, () => {});
  }

  // ---- Start / Stop / hide ------------------------------------------------------
  async function start() {
    clearNotice('busy', 'lost', 'nosensor', 'denied', 'noapi', 'frame', 'token');
    if (!window.isSecureContext) { // no browser gives motion sensors to it
      showInsecure();
      return;
    }
    if (!('DeviceMotionEvent' in window)) {
      showNotice('noapi', 'error', 'No motion sensor',
        'This browser has no motion sensor support (DeviceMotionEvent), so it cannot drive the LEDs. Try Chrome or Safari on a phone.');
      return;
    }
    // iOS/iPadOS: must be asked from the tap itself, before anything else awaits.
    if (typeof DeviceMotionEvent.requestPermission === 'function') {
      let answer;
      try { answer = await DeviceMotionEvent.requestPermission(); } catch (e) { answer = 'error'; }
      if (answer !== 'granted') {
        showNotice('denied', 'error', 'Motion access was denied',
          'The LEDs follow the phone\u2019s motion sensor, which the browser only shares when you allow it. ' +
          (s.webkit
            ? 'Close this tab, open the page again, tap Start and then Allow; or turn on Motion & Orientation Access in Settings \u203a Apps \u203a Safari.'
            : 'Allow "Motion sensors" in the site settings (the icon left of the address), then tap Start again.'));
        return;
      }
    }
    s.running = true;
    s.paused = false;
    s.gotData = false;
    s.everOpen = false;
    s.attempt = 0;
    ui.start.textContent = 'Stop';
    ui.start.classList.add('stop');
    listen(true);
    armNoDataTimer();
    connect();
    keepAwake(true);
  }

  function stop() {
    s.running = false;
    s.paused = false;
    listen(false);
    clearTimeout(s.noDataTimer);
    disconnect('stopped');
    keepAwake(false);
    s.latest = null;
    scheduleDraw();
    ui.start.textContent = 'Start';
    ui.start.classList.remove('stop');
    setConn('idle', 'Stopped');
    clearNotice('busy', 'lost', 'frame');
  }

  function pause() {
    if (!s.running || s.paused) return;
    s.paused = true;
    listen(false);
    clearTimeout(s.noDataTimer);
    disconnect('page hidden');
    keepAwake(false);
    setConn('idle', 'Paused');
  }

  function resume() {
    if (!s.running || !s.paused) return;
    s.paused = false;
    s.attempt = 0;
    listen(true);
    armNoDataTimer();
    connect();
    keepAwake(true);
  }

  ui.start.addEventListener('click', () => { if (s.running) stop(); else start(); });
  document.addEventListener('visibilitychange', () => { if (document.hidden) pause(); else resume(); });
  window.addEventListener('pagehide', pause);
  window.addEventListener('pageshow', () => { if (!document.hidden) resume(); });

  if (!window.isSecureContext) showInsecure();
  showLeds(null);
  draw();
  updateFoot();
  setInterval(updateFoot, 1000);

  // For tests and curious users (devtools console).
  window.gravityLed = { toDaemon, tiltDeg, screenAngle, isWebKitMotion, wsUrl, state: s };
})();
