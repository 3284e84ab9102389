// weiche's status page. Everything it shows comes from the API of the weiche that serves it:
// /status (pools, targets, verdicts), /probes (recent probe latencies), /history (the journal,
// for the timelines) and /events (a long poll: a change shows at once, without a reload).
// Drain, undrain and failback go through the same API. No library, no build step: the DOM and
// SVG are built by hand, and text always goes in as text (never as HTML).
'use strict';

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  // While the page is visible, /status and /probes are read again this often (probe latencies,
  // TTLs and doubts change without events). Events themselves arrive through the long poll.
  const REFRESH_MS = 5000;
  // How long one long poll waits for an event before it is asked again.
  const POLL_WAIT_S = 25;
  const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  const TIMELINE_KINDS = ['failover', 'failback', 'all_down', 'recovered', 'target_down', 'target_up',
    'drain', 'undrain', 'failback_released', 'started', 'stopped'];
  const FEED_MAX = 100;
  const TOKEN_KEY = 'weiche-token';

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    status: null,
    probes: null,
    history: [],
    feed: [],
    lastSeq: 0,
    // Bumped when the feed changes: it is redrawn only then, so its scroll stays put.
    feedVersion: 0,
    feedDrawn: -1,
    range: '1h',
    tokenWanted: null,
  };

  // ---- DOM helpers ------------------------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);

  function fill(el, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  const h = (tag, attrs, ...kids) => fill(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => fill(document.createElementNS(SVG, tag), attrs, kids);

  // A state's icon: its shape tells as much as its colour.
  function icon(kind) {
    const shapes = {
      up: [s('circle', { cx: 7, cy: 7, r: 6 }), s('path', { class: 'mark', d: 'M4 7.2 L6.2 9.4 L10 5' })],
      fallback: [s('path', { d: 'M7 1 L13.5 12.5 L0.5 12.5 Z' }), s('path', { class: 'mark', d: 'M7 5 L7 8.5 M7 10.2 L7 10.6' })],
      down: [s('rect', { x: 1, y: 1, width: 12, height: 12, rx: 1.5 }), s('path', { class: 'mark', d: 'M4.5 4.5 L9.5 9.5 M9.5 4.5 L4.5 9.5' })],
      drained: [s('circle', { cx: 7, cy: 7, r: 6 }), s('path', { class: 'mark', d: 'M3 11 L11 3' })],
      held: [s('rect', { x: 1, y: 1, width: 12, height: 12, rx: 3 }), s('path', { class: 'mark', d: 'M5.5 4.5 L5.5 9.5 M8.5 4.5 L8.5 9.5' })],
      doubt: [s('circle', { cx: 7, cy: 7, r: 6 }), s('path', { class: 'mark', d: 'M7 3.5 L7 7.5 M7 9.6 L7 10' })],
      unknown: [s('circle', { cx: 7, cy: 7, r: 5.5, class: 'hollow' })],
    };
    return s('svg', { class: `icon icon-${kind}`, viewBox: '0 0 14 14', width: 14, height: 14, 'aria-hidden': 'true', focusable: 'false' },
      shapes[kind] || shapes.unknown);
  }

  // A state as a badge: icon and word, coloured by its class.
  const badge = (kind, text, title) => h('span', { class: `badge badge-${kind}`, title }, icon(kind), text);

  // ---- formatting -------------------------------------------------------------------------

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
  const when = (ms) => timeFmt.format(new Date(ms));
  const at = (iso) => (iso ? Date.parse(iso) : NaN);

  function duration(ms) {
    const sec = Math.max(0, Math.round(ms / 1000));
    if (sec < 90) return `${sec} s`;
    const min = Math.floor(sec / 60);
    if (min < 90) return `${min} min ${sec % 60} s`;
    const hours = Math.floor(min / 60);
    if (hours < 48) return `${hours} h ${min % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  const isV6 = (addr) => String(addr).includes(':');
  const samePool = (a, b) => !!a && !!b && a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

  // ---- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, method) {
    const headers = {};
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const r = await fetch(path, { method: method || 'GET', headers, cache: 'no-store', credentials: 'omit' });
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = null;
    }
    if (r.status === 401) {
      askToken(state.token ? 'That token was refused.' : '');
      throw new ApiError(401, 'the API needs its token');
    }
    if (!r.ok) throw new ApiError(r.status, body && body.error ? body.error : `HTTP ${r.status}`);
    return body;
  }

  // Resolves once the user has given a token.
  function askToken(problem) {
    const dlg = $('#token');
    const err = $('#token-error');
    err.hidden = !problem;
    err.textContent = problem || '';
    if (!state.tokenWanted) {
      let done;
      state.tokenWanted = new Promise((resolve) => { done = resolve; });
      state.tokenWanted.done = done;
    }
    if (!dlg.open) dlg.showModal();
    return state.tokenWanted;
  }

  function takeToken() {
    const value = $('#token-input').value.trim();
    if (!value) return;
    state.token = value;
    sessionStorage.setItem(TOKEN_KEY, value);
    $('#token').close();
    const wanted = state.tokenWanted;
    state.tokenWanted = null;
    if (wanted) wanted.done();
    loadAll();
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- what the page holds ----------------------------------------------------------------

  function historyPath() {
    return `/history?since=${state.range}&kind=${TIMELINE_KINDS.join(',')}&limit=50000`;
  }

  async function loadAll() {
    try {
      const [status, probes, history, recent] = await Promise.all([
        api('/status?events=0'), api('/probes'), api(historyPath()), api('/events?since=0&limit=50'),
      ]);
      state.status = status;
      state.probes = probes;
      state.history = history;
      state.feed = recent.slice().reverse();
      state.feedVersion += 1;
      state.lastSeq = Math.max(state.lastSeq, ...recent.map((e) => e.seq), 0);
      setLive(true);
      render();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) notice(`Cannot load: ${e.message}`, true);
    }
  }

  async function refresh() {
    try {
      const [status, probes] = await Promise.all([api('/status?events=0'), api('/probes')]);
      state.status = status;
      state.probes = probes;
      render();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) setLive(false, e.message);
    }
  }

  function take(events) {
    for (const e of events) {
      state.lastSeq = Math.max(state.lastSeq, e.seq);
      state.feed.unshift(e);
      if (TIMELINE_KINDS.includes(e.kind)) state.history.push(e);
    }
    state.feed.length = Math.min(state.feed.length, FEED_MAX);
    state.feedVersion += 1;
  }

  // The live feed: a long poll that answers as soon as an event happens.
  async function poll() {
    for (;;) {
      if (state.tokenWanted) await state.tokenWanted;
      try {
        const events = await api(`/events?since=${state.lastSeq}&wait=${POLL_WAIT_S}&limit=1000`);
        setLive(true);
        if (events.length) {
          take(events);
          await refresh();
        }
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) {
          setLive(false, e.message);
          await sleep(2000);
        }
      }
    }
  }

  function setLive(ok, why) {
    const el = $('#live');
    el.className = ok ? 'live live-ok' : 'live live-lost';
    el.replaceChildren(icon(ok ? 'up' : 'down'), ok ? 'live' : `reconnecting${why ? ` (${why})` : ''}`);
  }

  function notice(text, bad) {
    const el = $('#notice');
    el.hidden = false;
    el.className = bad ? 'notice notice-bad' : 'notice';
    el.replaceChildren(icon(bad ? 'down' : 'up'), text);
  }

  // ---- a pool's state ---------------------------------------------------------------------

  // The address families a pool has targets of, with what it answers for each.
  function families(p) {
    return [['A', p.a, false], ['AAAA', p.aaaa, true]]
      .filter(([, , v6]) => p.targets.some((t) => isV6(t.address) === v6))
      .map(([name, answer, v6]) => ({ name, answer, v6 }));
  }

  const MODE_WORDS = { preferred: 'preferred', fallback: 'fallback', alldown: 'all down' };
  const MODE_ICON = { preferred: 'up', fallback: 'fallback', alldown: 'down' };

  function poolState(p) {
    const modes = families(p).map((f) => f.answer.mode);
    const mode = modes.includes('alldown') ? 'alldown' : modes.includes('fallback') ? 'fallback' : 'preferred';
    const held = !!p.held && (p.held.a !== null || p.held.aaaa !== null);
    const drained = p.targets.filter((t) => t.drained).map((t) => t.address);
    return { mode, held, drained };
  }

  // How the page draws a target's verdict: icon kind and word.
  function verdictOf(t) {
    if (t.drained) return ['drained', `drained (${t.verdict})`];
    if (t.verdict === 'up') return [t.in_doubt ? 'doubt' : 'up', t.in_doubt ? 'up, in doubt' : 'up'];
    if (t.verdict === 'down') return ['down', t.in_doubt ? 'down, in doubt' : 'down'];
    return ['unknown', 'unknown'];
  }

  // ---- rendering --------------------------------------------------------------------------

  function render() {
    const st = state.status;
    if (!st) return;
    $('#version').textContent = `version ${st.version}`;
    $('#updated').textContent = `updated ${when(Date.now())}`;
    renderBanners(st);
    renderSummary(st);
    const probes = new Map((state.probes ? state.probes.pools : []).map((p) => [p.pool, p]));
    const pools = $('#pools');
    // Redrawn whole; the button that had the focus gets it back.
    const focused = pools.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    if (st.pools.length === 0) {
      pools.replaceChildren(h('p', { class: 'muted' }, 'No pools are served.'));
    } else {
      pools.replaceChildren(...st.pools.map((p, i) => renderPool(p, probes.get(p.pool), i)));
    }
    if (focused) {
      const again = [...pools.querySelectorAll('[data-key]')].find((el) => el.dataset.key === focused);
      if (again) again.focus();
    }
    renderCluster(st.cluster);
    if (state.feedDrawn !== state.feedVersion) {
      renderFeed();
      state.feedDrawn = state.feedVersion;
    }
  }

  function renderBanners(st) {
    const out = [];
    if (st.journal && st.journal.persisted === false) {
      out.push(h('p', { class: 'banner' }, icon('down'), `Event journal not written: ${st.journal.error || 'unknown error'}. `,
        'New events wait in memory until the disk takes them again.'));
    }
    if (st.state && st.state.persisted === false) {
      out.push(h('p', { class: 'banner' }, icon('down'), `State not persisted: ${st.state.error || 'unknown error'}. `,
        'Drains, holds and serials changed since then hold until weiche restarts only.'));
    }
    for (const z of st.zones.filter((z) => z.last_error)) {
      out.push(h('p', { class: 'banner' }, icon('fallback'), `Zone ${z.zone}: last reload failed: ${z.last_error}`));
    }
    $('#banners').replaceChildren(...out);
  }

  function renderSummary(st) {
    const counts = { preferred: 0, fallback: 0, alldown: 0 };
    let held = 0;
    let drained = 0;
    for (const p of st.pools) {
      const ps = poolState(p);
      counts[ps.mode] += 1;
      if (ps.held) held += 1;
      if (ps.drained.length) drained += 1;
    }
    $('#summary').replaceChildren(...[
      h('span', { class: 'summary-total' }, `${st.pools.length} pool${st.pools.length === 1 ? '' : 's'}:`),
      badge('up', `${counts.preferred} preferred`),
      counts.fallback ? badge('fallback', `${counts.fallback} on fallback`) : null,
      counts.alldown ? badge('down', `${counts.alldown} all down`) : null,
      drained ? badge('drained', `${drained} with drains`) : null,
      held ? badge('held', `${held} held`) : null,
    ].filter(Boolean));
  }

  function renderPool(p, probes, index) {
    const ps = poolState(p);
    const id = `pool-${index}`;
    const badges = [badge(MODE_ICON[ps.mode], MODE_WORDS[ps.mode])];
    if (ps.drained.length) badges.push(badge('drained', `drained: ${ps.drained.join(', ')}`));
    if (ps.held) badges.push(badge('held', 'held (manual failback)'));
    const head = h('header', { class: 'pool-head' },
      h('h2', { id }, p.pool),
      h('span', { class: 'badges' }, badges),
      ps.held ? h('button', { type: 'button', class: 'action', 'data-action': 'failback', 'data-key': `${p.pool}|failback`, onclick: () => askFailback(p) }, 'Fail back') : null);
    return h('section', { class: `pool pool-${ps.mode}`, 'aria-labelledby': id, 'data-pool': p.pool, 'data-state': ps.mode },
      head,
      h('div', { class: 'answers' }, families(p).map((f) => renderAnswer(p, f))),
      renderTimeline(p),
      renderTargets(p, probes));
  }

  function renderAnswer(p, f) {
    const a = f.answer;
    const text = a.answer.length ? a.answer.join(', ') : '(nothing: NODATA)';
    const level = a.priority === null ? 'no single level' : `priority ${a.priority}`;
    return h('p', { class: `answer answer-${a.mode}`, 'data-family': f.name },
      h('span', { class: 'family' }, f.name),
      h('span', { class: 'arrow', 'aria-hidden': 'true' }, '→'),
      h('strong', { class: 'answer-addrs' }, text),
      h('span', { class: 'answer-meta' }, badge(MODE_ICON[a.mode], MODE_WORDS[a.mode]), ` ${level} · TTL ${a.ttl} s · check ${p.checks.length ? p.checks.join(', ') : p.check} · all down: ${p.policy} · failback: ${p.failback}`));
  }

  function renderTargets(p, probes) {
    const rows = p.targets.map((t, ti) => {
      const [kind, word] = verdictOf(t);
      const lp = t.last_probe;
      const last = !lp ? 'not probed yet' : lp.ok ? `ok in ${lp.latency_ms} ms` : `failed: ${lp.error}`;
      const checks = probes && probes.targets[ti] ? probes.targets[ti].checks : [];
      return h('tr', { 'data-target': t.address, 'data-verdict': t.verdict, 'data-drained': t.drained ? 'yes' : 'no' },
        h('th', { scope: 'row', 'data-label': 'Target' }, h('span', { class: 'addr' }, t.address), h('span', { class: 'prio' }, ` p${t.priority}`)),
        h('td', { 'data-label': 'Verdict' }, badge(kind, word), dissent(t)),
        h('td', { 'data-label': 'Since' }, t.since ? h('time', { datetime: t.since, title: t.since }, `${when(at(t.since))} (${duration(Date.now() - at(t.since))})`) : '-'),
        h('td', { 'data-label': 'Last probe', class: lp && !lp.ok ? 'probe-failed' : null }, last),
        h('td', { 'data-label': 'Latency', class: 'spark-cell' }, checks.map((c) => sparkline(c, checks.length > 1))),
        h('td', { 'data-label': 'Action' }, t.drained
          ? h('button', { type: 'button', class: 'action', 'data-action': 'undrain', 'data-key': `${p.pool}|${ti}|undrain`, onclick: () => askUndrain(p, t) }, 'Undrain')
          : h('button', { type: 'button', class: 'action', 'data-action': 'drain', 'data-key': `${p.pool}|${ti}|drain`, onclick: () => askDrain(p, t) }, 'Drain')));
    });
    return h('div', { class: 'targets-wrap' },
      h('table', { class: 'targets' },
        h('caption', { class: 'visually-hidden' }, `Targets of ${p.pool}`),
        h('thead', {}, h('tr', {}, ['Target', 'Verdict', 'Since', 'Last probe', 'Latency', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)));
  }

  // Latency of the recent probes of one check: a line, failures as crosses on the floor.
  function sparkline(c, named) {
    const W = 120;
    const H = 26;
    const pts = c.recent || [];
    if (pts.length === 0) return h('span', { class: 'muted' }, 'no probes yet');
    const max = Math.max(1, ...pts.map((p) => p.latency_ms));
    const x = (i) => (pts.length === 1 ? W / 2 : 2 + (i * (W - 4)) / (pts.length - 1));
    const y = (ms) => H - 3 - ((H - 6) * ms) / max;
    const ok = pts.map((p, i) => [i, p]).filter(([, p]) => p.ok);
    const line = ok.map(([i, p]) => `${x(i).toFixed(1)},${y(p.latency_ms).toFixed(1)}`).join(' ');
    const fails = pts.map((p, i) => [i, p]).filter(([, p]) => !p.ok);
    const lat = ok.map(([, p]) => p.latency_ms).sort((a, b) => a - b);
    const median = lat.length ? lat[Math.floor(lat.length / 2)] : null;
    const summary = `${c.name} at ${c.probe}: ${pts.length} probes, ${fails.length} failed` +
      (lat.length ? `, latency ${lat[0]}–${lat[lat.length - 1]} ms, median ${median} ms` : '');
    return h('span', { class: 'spark' },
      s('svg', { class: 'sparkline', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': summary },
        s('title', {}, summary),
        ok.length > 1 ? s('polyline', { class: 'spark-line', points: line }) : null,
        ok.map(([i, p]) => (i === pts.length - 1 || ok.length === 1 ? s('circle', { class: 'spark-dot', cx: x(i), cy: y(p.latency_ms), r: 2 }) : null)),
        fails.map(([i]) => s('path', { class: 'spark-fail', d: `M${x(i) - 2.5} ${H - 5.5} l5 5 M${x(i) + 2.5} ${H - 5.5} l-5 5` }))),
      h('span', { class: 'spark-text' }, named ? `${c.name}: ` : '', median === null ? 'all failed' : `${median} ms`));
  }

  // ---- the timeline -----------------------------------------------------------------------

  // Which answer a comma-separated address list was: its mode, from the targets' priorities.
  function modeOfAddresses(p, fam, list) {
    if (!list || list === '(nothing)') return 'alldown';
    const best = Math.min(...p.targets.filter((t) => isV6(t.address) === fam.v6).map((t) => t.priority));
    const prios = list.split(',').map((a) => p.targets.find((t) => t.address === a.trim())).filter(Boolean).map((t) => t.priority);
    if (!prios.length) return 'preferred';
    return Math.min(...prios) > best ? 'fallback' : 'preferred';
  }

  // What a family answered over [t0, t1]: segments { start, end, answer, mode }, and the moves
  // between them.
  function answerSegments(p, fam, events, t0, t1) {
    const moves = events.filter((e) => e.type === fam.name && ['failover', 'failback', 'all_down', 'recovered'].includes(e.kind));
    const now = { answer: fam.answer.answer.join(',') || '(nothing)', mode: fam.answer.mode };
    if (!moves.length) return { segs: [{ start: t0, end: t1, ...now }], moves };
    const segs = [];
    let start = t0;
    let answer = moves[0].from;
    let mode = moves[0].kind === 'recovered' ? 'alldown' : modeOfAddresses(p, fam, moves[0].from);
    for (const e of moves) {
      const t = Math.max(t0, at(e.time));
      segs.push({ start, end: t, answer, mode });
      start = t;
      answer = e.to;
      mode = e.kind === 'all_down' ? 'alldown' : modeOfAddresses(p, fam, e.to);
    }
    // The latest is what /status says now.
    segs.push({ start, end: t1, ...now });
    return { segs: segs.filter((g) => g.end > g.start), moves };
  }

  // When weiche was not running, or ran without a record, over [t0, t1]: from a clean stop (or
  // a crash: the last event before) to the next start; before the first start in the range, from
  // its beginning, unless events show it ran.
  function gaps(events, t0) {
    const out = [];
    let stoppedAt = null;
    let lastSeen = null;
    for (const e of events) {
      const t = at(e.time);
      if (e.kind === 'stopped') stoppedAt = t;
      if (e.kind === 'started') {
        out.push({ start: stoppedAt ?? lastSeen ?? t0, end: t, clean: stoppedAt !== null });
        stoppedAt = null;
      }
      lastSeen = t;
    }
    return out.filter((g) => g.end > g.start);
  }

  // `segs` without the parts that fall into `holes`.
  function without(segs, holes) {
    let out = segs;
    for (const g of holes) {
      out = out.flatMap((x) => {
        if (g.end <= x.start || g.start >= x.end) return [x];
        const parts = [];
        if (g.start > x.start) parts.push({ ...x, end: g.start });
        if (g.end < x.end) parts.push({ ...x, start: g.end });
        return parts;
      });
    }
    return out;
  }

  // When a target was down (any of its checks) and drained over [t0, t1].
  function targetIntervals(p, t, events, t0, t1) {
    const probes = new Set([t.probe, ...t.checks.map((c) => c.probe)]);
    const checkEvents = events.filter((e) => (e.kind === 'target_down' || e.kind === 'target_up') && probes.has(e.target));
    // Per check (probe address and name): down at the start?
    const down = new Map();
    for (const c of t.checks) {
      const key = `${c.probe}|${c.name}`;
      const first = checkEvents.find((e) => `${e.target}|${e.check}` === key);
      down.set(key, first ? first.from === 'down' : c.verdict === 'down');
    }
    const anyDown = () => [...down.values()].some(Boolean);
    let was = anyDown();
    const downs = [];
    let since = was ? t0 : null;
    for (const e of checkEvents) {
      down.set(`${e.target}|${e.check}`, e.kind === 'target_down');
      const is = anyDown();
      const time = Math.max(t0, at(e.time));
      if (is && !was) since = time;
      if (!is && was) downs.push({ start: since, end: time });
      was = is;
    }
    if (was) downs.push({ start: since, end: t1, ongoing: true });

    const drainEvents = events.filter((e) => (e.kind === 'drain' || e.kind === 'undrain') && e.target === t.address &&
      (!e.pool || samePool(e.pool, p.pool)));
    const inStatus = state.status.drained.filter((d) => d.address === t.address && (!d.pool || samePool(d.pool, p.pool)));
    let everywhere;
    let here;
    if (drainEvents.length) {
      const first = drainEvents[0];
      // Before an undrain it was drained; before a drain it was not.
      everywhere = first.kind === 'undrain' && !first.pool;
      here = first.kind === 'undrain' && !!first.pool;
    } else {
      everywhere = inStatus.some((d) => !d.pool);
      here = inStatus.some((d) => !!d.pool);
    }
    const drains = [];
    let dSince = everywhere || here ? t0 : null;
    for (const e of drainEvents) {
      const before = everywhere || here;
      if (e.kind === 'drain') {
        if (e.pool) here = true; else everywhere = true;
      } else if (e.pool) {
        here = false;
      } else {
        everywhere = false;
        here = false;
      }
      const after = everywhere || here;
      const time = Math.max(t0, at(e.time));
      if (after && !before) dSince = time;
      if (!after && before) drains.push({ start: dSince, end: time });
    }
    if (everywhere || here) drains.push({ start: dSince, end: t1, ongoing: true });
    return { downs: downs.filter((d) => d.end > d.start), drains: drains.filter((d) => d.end > d.start) };
  }

  function ticks(t0, t1) {
    const span = t1 - t0;
    const steps = [60e3, 5 * 60e3, 10 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 86400e3];
    const step = steps.find((st) => span / st <= 8) || 86400e3;
    const offset = new Date(t0).getTimezoneOffset() * 60e3;
    const out = [];
    for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) out.push(t);
    return { out, daily: step >= 86400e3 };
  }

  function renderTimeline(p) {
    const fams = families(p);
    const t1 = Date.now();
    const t0 = t1 - RANGES[state.range];
    const events = state.history
      .filter((e) => samePool(e.pool, p.pool) || (['drain', 'undrain', 'started', 'stopped'].includes(e.kind) && !e.pool))
      .filter((e) => at(e.time) >= t0)
      .sort((a, b) => a.seq - b.seq);
    const holes = gaps(events, t0);
    const width = Math.max(300, Math.min(($('#pools').clientWidth || 900) - 34, 1600));
    const narrow = width < 560;
    const L = narrow ? 74 : 128;
    const R = 8;
    const band = 24;
    const lane = 14;
    const gap = 6;
    const x = (t) => L + ((Math.min(t1, Math.max(t0, t)) - t0) / (t1 - t0)) * (width - L - R);
    const kids = [];
    const outages = [];
    let y = 4;
    for (const fam of fams) {
      const { segs: all, moves } = answerSegments(p, fam, events, t0, t1);
      const segs = without(all, holes);
      kids.push(s('text', { class: 'tl-label', x: L - 6, y: y + band / 2 + 4, 'text-anchor': 'end' }, `${fam.name} answer`));
      for (const g of holes) {
        kids.push(s('rect', { class: 'seg-none', x: x(g.start), y, width: Math.max(1, x(g.end) - x(g.start)), height: band },
          s('title', {}, `${g.clean ? 'weiche not running' : 'no record (weiche not running, or stopped without a record)'}: ${when(g.start)} to ${when(g.end)}`)));
      }
      for (const g of segs) {
        const x0 = x(g.start);
        const w = Math.max(1, x(g.end) - x0);
        const what = `${fam.name} ${MODE_WORDS[g.mode]}: ${g.answer} from ${when(g.start)} for ${duration(g.end - g.start)}`;
        kids.push(s('rect', { class: `seg seg-${g.mode}`, x: x0, y, width: w, height: band }, s('title', {}, what)));
        if (g.mode !== 'preferred') {
          kids.push(s('rect', { class: `seg-pattern seg-pattern-${g.mode}`, x: x0, y, width: w, height: band }));
          outages.push({ fam: fam.name, ...g });
        }
        const label = g.mode === 'preferred' ? g.answer : `${g.answer} · ${duration(g.end - g.start)}`;
        if (w > label.length * 6.5 + 8) {
          kids.push(s('text', { class: `seg-text seg-text-${g.mode}`, x: x0 + 4, y: y + band / 2 + 4 }, label));
        }
      }
      for (const e of moves) {
        const mx = x(at(e.time));
        const shape = e.kind === 'failover' ? `M${mx - 5} ${y - 4} L${mx + 5} ${y - 4} L${mx} ${y + 4} Z`
          : e.kind === 'failback' ? `M${mx - 5} ${y + 4} L${mx + 5} ${y + 4} L${mx} ${y - 4} Z`
            : e.kind === 'all_down' ? `M${mx - 4} ${y - 4} L${mx + 4} ${y + 4} M${mx + 4} ${y - 4} L${mx - 4} ${y + 4}`
              : `M${mx - 4} ${y} a4 4 0 1 0 8 0 a4 4 0 1 0 -8 0`;
        kids.push(s('path', { class: `move move-${e.kind}`, d: shape }, s('title', {}, `${when(at(e.time))} ${e.kind}: ${e.message}`)));
      }
      y += band + gap;
    }
    for (const t of p.targets) {
      const intervals = targetIntervals(p, t, events, t0, t1);
      const downs = without(intervals.downs, holes);
      const drains = without(intervals.drains, holes);
      kids.push(s('text', { class: 'tl-label tl-target', x: L - 6, y: y + lane / 2 + 4, 'text-anchor': 'end' }, narrow ? t.address : `${t.address} p${t.priority}`));
      kids.push(s('rect', { class: 'lane', x: L, y, width: width - L - R, height: lane }));
      for (const g of holes) kids.push(s('rect', { class: 'seg-none', x: x(g.start), y, width: Math.max(1, x(g.end) - x(g.start)), height: lane }));
      for (const d of drains) {
        const w = Math.max(1, x(d.end) - x(d.start));
        kids.push(s('rect', { class: 'lane-drained', x: x(d.start), y, width: w, height: lane },
          s('title', {}, `${t.address} drained from ${when(d.start)} for ${duration(d.end - d.start)}${d.ongoing ? ' (still)' : ''}`)));
      }
      for (const d of downs) {
        const w = Math.max(1, x(d.end) - x(d.start));
        const what = `${t.address} down from ${when(d.start)} for ${duration(d.end - d.start)}${d.ongoing ? ' (still)' : ''}`;
        kids.push(s('rect', { class: 'lane-down', x: x(d.start), y: y + 2, width: w, height: lane - 4 }, s('title', {}, what)));
        kids.push(s('rect', { class: 'seg-pattern seg-pattern-alldown', x: x(d.start), y: y + 2, width: w, height: lane - 4 }));
      }
      y += lane + 3;
    }
    for (const e of events.filter((ev) => ev.kind === 'started' && at(ev.time) > t0)) {
      const sx = x(at(e.time));
      kids.push(s('line', { class: 'restart', x1: sx, x2: sx, y1: 0, y2: y }, s('title', {}, `${when(at(e.time))}: ${e.message}`)));
    }
    const { out, daily } = ticks(t0, t1);
    y += 2;
    kids.push(s('line', { class: 'axis', x1: L, x2: width - R, y1: y, y2: y }));
    for (const t of out) {
      const tx = x(t);
      kids.push(s('line', { class: 'tick', x1: tx, x2: tx, y1: y, y2: y + 4 }));
      if (tx > L + 14 && tx < width - R - 14) {
        kids.push(s('text', { class: 'tick-text', x: tx, y: y + 15, 'text-anchor': 'middle' },
          daily ? dayFmt.format(new Date(t)) : timeFmt.format(new Date(t)).slice(0, 5)));
      }
    }
    const height = y + 20;
    const svg = s('svg', { class: 'timeline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': `What ${p.pool} answered over the last ${state.range}` }, kids);
    const list = outages.length
      ? h('ul', { class: 'outages' }, outages.map((o) => h('li', {}, icon(MODE_ICON[o.mode]),
        `${o.fam} ${MODE_WORDS[o.mode]} (${o.answer}) from ${when(o.start)}, ${o.end === t1 ? `${duration(o.end - o.start)} so far` : `for ${duration(o.end - o.start)}`}`)))
      : h('p', { class: 'outages muted' }, `No failover in the last ${state.range === '1h' ? 'hour' : state.range === '24h' ? 'day' : 'week'}.`);
    return h('div', { class: 'timeline-wrap' }, svg, list);
  }

  // ---- the event feed ---------------------------------------------------------------------

  const KIND_ICON = {
    failover: 'fallback', failback: 'up', all_down: 'down', recovered: 'up', target_down: 'down', target_up: 'up',
    drain: 'drained', undrain: 'up', failback_released: 'held', zone_error: 'fallback', zone_removed: 'fallback',
    journal_failed: 'down', journal_resumed: 'up', started: 'up', stopped: 'unknown',
  };

  function renderFeed() {
    const items = state.feed.map((e) => h('li', { class: `feed-item feed-${e.kind}`, 'data-kind': e.kind, 'data-seq': e.seq },
      icon(KIND_ICON[e.kind] || 'unknown'),
      h('time', { datetime: e.time, title: e.time }, when(at(e.time))),
      h('span', { class: 'feed-kind' }, e.kind.replace(/_/g, ' ')),
      h('span', { class: 'feed-msg' }, e.message)));
    $('#feed').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No events yet.')]));
  }

  // The cluster, when `[cluster]` is configured (/status then has a `cluster` key): this
  // member's view of the members, their weights, whether it is in the primary component, and
  // how many targets some member judges otherwise (each target's dissent shows in its row).
  // Without a cluster, this renders nothing.
  function renderCluster(cluster) {
    const el = $('#cluster');
    if (!cluster) {
      el.hidden = true;
      el.replaceChildren();
      return;
    }
    el.hidden = false;
    const yes = (b) => (b ? 'yes' : 'no');
    const rows = (cluster.members || []).map((m) => h('tr', { 'data-member': m.name },
      h('th', { scope: 'row', 'data-label': 'Member' }, m.me ? `${m.name} (this)` : m.name, m.witness ? ' · witness' : ''),
      h('td', { 'data-label': 'Site' }, m.site),
      h('td', { 'data-label': 'Weight' }, String(m.weight)),
      h('td', { 'data-label': 'Connected' }, m.away ? badge('drained', 'left') : m.connected ? badge('up', 'connected') : badge('down', 'not heard')),
      h('td', { 'data-label': 'Primary' }, m.primary ? badge('up', 'primary') : badge('fallback', 'not primary')),
      h('td', { 'data-label': 'Last heard' }, m.me ? '-' : m.last_heard_ms === null ? 'never' : `${duration(m.last_heard_ms)} ago`)));
    el.replaceChildren(
      h('header', { class: 'pool-head' },
        h('h2', {}, `Cluster: member ${cluster.member}`),
        h('span', { class: 'badges' },
          cluster.primary ? badge('up', 'primary component') : badge('down', 'not primary'),
          cluster.serving === 'normal' ? null : badge('fallback', `pool answers ${cluster.serving}`),
          cluster.dissent ? badge('doubt', `dissent on ${cluster.dissent} target${cluster.dissent === 1 ? '' : 's'}`) : null)),
      h('p', { class: 'muted' }, `Weight heard ${cluster.heard_weight} of ${cluster.total_weight} (quorum ${cluster.quorum}); ` +
        `pool answers: ${cluster.serving}; in a minority: ${cluster.minority}.`),
      h('div', { class: 'targets-wrap' }, h('table', { class: 'targets' },
        h('caption', { class: 'visually-hidden' }, 'Cluster members'),
        h('thead', {}, h('tr', {}, ['Member', 'Site', 'Weight', 'Connected', 'Primary', 'Last heard'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows))));
  }

  // In a cluster: the members whose own verdict on a target differs from the cluster's.
  function dissent(t) {
    const differ = [];
    for (const c of t.checks || []) {
      for (const [member, verdict] of Object.entries(c.votes || {})) {
        if (verdict !== c.verdict) differ.push(`${member} says ${verdict}`);
      }
    }
    return differ.length ? h('span', { class: 'dissent' }, badge('doubt', `dissent: ${[...new Set(differ)].join(', ')}`)) : null;
  }

  function renderLegend() {
    const item = (kind, text) => h('li', {}, icon(kind), text);
    const swatch = (cls, text) => h('li', {}, s('svg', { width: 28, height: 12, viewBox: '0 0 28 12', 'aria-hidden': 'true' },
      s('rect', { class: `seg seg-${cls}`, x: 0, y: 0, width: 28, height: 12 }),
      cls === 'preferred' ? null : s('rect', { class: `seg-pattern seg-pattern-${cls}`, x: 0, y: 0, width: 28, height: 12 })), text);
    $('#legend').replaceChildren(
      item('up', 'up / preferred'), item('fallback', 'fallback (a worse level answers)'), item('down', 'down / all down'),
      item('drained', 'drained by an operator'), item('held', 'held: manual failback'), item('doubt', 'in doubt: being confirmed'),
      item('unknown', 'not probed yet'),
      swatch('preferred', 'timeline: preferred level'), swatch('fallback', 'timeline: fallback (hatched)'),
      swatch('alldown', 'timeline: all down (crossed)'),
      h('li', {}, s('svg', { width: 28, height: 12, viewBox: '0 0 28 12', 'aria-hidden': 'true' },
        s('rect', { class: 'seg-none', x: 0, y: 0, width: 28, height: 12 })), 'timeline: weiche not running, no record'),
      h('li', {}, s('svg', { width: 28, height: 12, viewBox: '0 0 28 12', 'aria-hidden': 'true' },
        s('path', { class: 'move move-failover', d: 'M4 2 L12 2 L8 10 Z' }), s('path', { class: 'move move-failback', d: 'M16 10 L24 10 L20 2 Z' })),
      'failover ▼ and failback ▲'));
  }

  // ---- actions ----------------------------------------------------------------------------

  function confirmAction({ title, text, yes, extra, run }) {
    const dlg = $('#confirm');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    $('#confirm-extra').replaceChildren(...(extra || []));
    const button = $('#confirm-yes');
    button.textContent = yes;
    button.onclick = async () => {
      dlg.close();
      try {
        await run();
        notice(`Done: ${title.replace(/\?$/, '')}.`);
      } catch (e) {
        notice(`${title.replace(/\?$/, '')}: ${e.message}`, true);
      }
      await refresh();
    };
    $('#confirm-no').onclick = () => dlg.close();
    dlg.showModal();
  }

  function askDrain(p, t) {
    const everywhere = h('input', { type: 'radio', name: 'scope', id: 'scope-all', value: 'all', checked: true });
    const here = h('input', { type: 'radio', name: 'scope', id: 'scope-pool', value: 'pool' });
    confirmAction({
      title: `Drain ${t.address}?`,
      text: `DNS stops answering ${t.address}; it stays probed, and its verdict stays visible.`,
      yes: 'Drain',
      extra: [h('fieldset', { class: 'scope' }, h('legend', {}, 'Where'),
        h('label', { for: 'scope-all' }, everywhere, ' in every pool'),
        h('label', { for: 'scope-pool' }, here, ` only in ${p.pool}`))],
      run: () => api(`/targets/${encodeURIComponent(t.address)}/drain${here.checked ? `?pool=${encodeURIComponent(p.pool)}` : ''}`, 'POST'),
    });
  }

  function askUndrain(p, t) {
    const everywhere = state.status.drained.some((d) => d.address === t.address && !d.pool);
    confirmAction({
      title: `Undrain ${t.address}?`,
      text: everywhere ? `${t.address} goes back into every pool's answers once it is up.`
        : `${t.address} goes back into the answers of ${p.pool} once it is up.`,
      yes: 'Undrain',
      run: () => api(`/targets/${encodeURIComponent(t.address)}/undrain${everywhere ? '' : `?pool=${encodeURIComponent(p.pool)}`}`, 'POST'),
    });
  }

  function askFailback(p) {
    confirmAction({
      title: `Fail ${p.pool} back?`,
      text: `${p.pool} is held on a fallback level (manual failback). Release it to its best healthy level.`,
      yes: 'Fail back',
      run: () => api(`/pools/${encodeURIComponent(p.pool)}/failback`, 'POST'),
    });
  }

  // ---- start ------------------------------------------------------------------------------

  function setRange(range) {
    state.range = range;
    for (const b of document.querySelectorAll('.range button')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
    api(historyPath()).then((history) => {
      state.history = history;
      render();
    }).catch((e) => notice(`Cannot load the history: ${e.message}`, true));
  }

  function start() {
    for (const b of document.querySelectorAll('.range button')) b.addEventListener('click', () => setRange(b.dataset.range));
    // Never submitted anywhere (the policy allows no form action): the script takes it.
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      takeToken();
    });
    // The token dialog stays until a token is given.
    $('#token').addEventListener('cancel', (e) => e.preventDefault());
    renderLegend();
    let resized = null;
    window.addEventListener('resize', () => {
      clearTimeout(resized);
      resized = setTimeout(render, 150);
    });
    setInterval(() => {
      if (!document.hidden && !state.tokenWanted) refresh();
    }, REFRESH_MS);
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refresh();
    });
    loadAll().then(poll);
  }

  start();
})();
