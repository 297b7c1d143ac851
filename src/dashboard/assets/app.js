// edgeseg dashboard: one page for the device view (edgeseg run) and the fleet
// view (edgeseg dashboard --mqtt). Plain JS, no library, nothing fetched from
// elsewhere. The server says which view it is in /api/status.
'use strict';

const STAGES = [
  ['capture_ms', 'capture', '#8b949e'],
  ['queue_ms', 'queue', '#d2a8ff'],
  ['preprocess_ms', 'preprocess', '#58a6ff'],
  ['infer_ms', 'infer', '#f0883e'],
  ['decode_ms', 'decode', '#3fb950'],
  ['emit_ms', 'emit', '#db61a2'],
];
const COUNTERS = [
  ['frames', 'frames'], ['pass', 'pass'], ['fail', 'fail'], ['dropped', 'drops'],
  ['corrupt', 'corrupt'], ['fps', 'FPS'],
];

const $ = (sel, root = document) => root.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
const fmt = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(1)) : String(v ?? '–'));
const time = (us) => (us ? new Date(us / 1000).toLocaleTimeString() : '–');

async function getJSON(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function setConn(ok, text) {
  const c = $('#conn');
  c.textContent = text;
  c.className = 'conn ' + (ok ? 'ok' : 'bad');
}

// ---- components shared by both views ------------------------------------

// Counters: totals, rate and one tile per defect class.
function renderCounters(root, stats) {
  const tiles = COUNTERS.map(([k, label]) => [k, label, stats[k]]);
  for (const [cls, n] of Object.entries(stats.defects || {})) tiles.push(['defect-' + cls, cls, n]);
  for (const [key, label, value] of tiles) {
    let t = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!t) {
      t = el('div', { class: `counter ${key}`, 'data-key': key }, el('div', { class: 'label', text: label }), el('div', { class: 'value' }));
      root.append(t);
    }
    $('.value', t).textContent = fmt(value);
  }
}

// Latency chart: stacked stages per frame, newest on the right (canvas).
function drawLatency(canvas, points) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 22;
  ctx.clearRect(0, 0, w, h);
  if (!points.length) {
    ctx.fillStyle = '#8b93a1';
    ctx.fillText('waiting for frames…', 10, h / 2);
    return;
  }
  const totals = points.map((p) => STAGES.reduce((s, [k]) => s + (p[k] || 0), 0));
  const max = Math.max(1, ...totals) * 1.1;
  const step = (w - pad) / Math.max(1, points.length - 1);
  const y = (v) => h - 14 - (v / max) * (h - 24);
  let base = points.map(() => 0);
  for (const [k, , color] of STAGES) {
    const top = points.map((p, i) => base[i] + (p[k] || 0));
    ctx.beginPath();
    top.forEach((v, i) => (i ? ctx.lineTo(pad + i * step, y(v)) : ctx.moveTo(pad, y(v))));
    for (let i = points.length - 1; i >= 0; i--) ctx.lineTo(pad + i * step, y(base[i]));
    ctx.closePath();
    ctx.fillStyle = color;
    ctx.fill();
    base = top;
  }
  ctx.fillStyle = '#8b93a1';
  ctx.font = '10px sans-serif';
  ctx.fillText(`${max.toFixed(0)} ms`, 2, 10);
  ctx.fillText('0', 2, h - 14);
  ctx.fillText(`${points.length} frames`, w - 60, h - 2);
}

function renderLegend(root) {
  root.replaceChildren(...STAGES.map(([, name, color]) => el('span', {}, el('i', { style: `background:${color}` }), name)));
}

function findingsText(findings) {
  const score = (v) => (typeof v === 'number' ? v.toFixed(2) : '?');
  return (Array.isArray(findings) ? findings : []).map((f) => `${f && f.class} ${score(f && f.score)} (${f && f.area} px)`).join(', ') || '–';
}

// Recent defects: one line per failing frame.
function renderDefects(root, defects) {
  root.replaceChildren(...defects.map((d) => el('li', { class: 'defect' },
    el('span', { class: 'verdict-fail', text: `#${d.frame} ` }), `${time(d.captured_unix_us)} ${d.source || ''}: ${findingsText(d.findings)}`)));
  if (!defects.length) root.append(el('li', { class: 'muted', text: 'none yet' }));
}

// ---- device view --------------------------------------------------------

async function deviceView(status) {
  $('#device-view').hidden = false;
  $('#title').textContent = `${status.device} · ${status.model.name} · ${status.board.source}`;
  const info = $('#info');
  const rows = [
    ['device', status.device], ['model', status.model.name], ['model file', status.model.path],
    ['classes', status.model.classes.join(', ')], ['input', status.model.input.join('×')],
    ['threads', status.model.threads], ['config', status.board.config], ['source', status.board.source],
    ['mode', status.board.mode], ['sinks', status.board.sinks.join(', ')], ['version', status.version],
  ];
  info.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  renderLegend($('#latency-legend'));

  $('#stream').src = '/api/stream.mjpeg';

  let points = await getJSON('/api/latency').catch(() => []);
  drawLatency($('#latency'), points);

  const results = $('#results');
  const events = new EventSource('/api/events');
  events.addEventListener('frame', (e) => {
    const r = JSON.parse(e.data);
    points.push({ frame: r.frame, ...r.latency });
    if (points.length > 240) points = points.slice(-240);
    const line = el('li', {}, el('span', { class: `verdict-${r.verdict}`, text: r.verdict.toUpperCase() }),
      ` #${r.frame} ${r.source} ${r.findings.length ? '· ' + findingsText(r.findings) : ''}`);
    results.prepend(line);
    while (results.children.length > 10) results.lastChild.remove();
  });
  events.onopen = () => setConn(true, 'live');
  events.onerror = () => setConn(false, 'reconnecting…');
  setInterval(() => drawLatency($('#latency'), points), 500);

  const shown = new Map();
  async function refresh() {
    try {
      renderCounters($('#counters'), await getJSON('/api/stats'));
      const fails = await getJSON('/api/failures');
      const list = $('#failures');
      const items = fails.map((f) => {
        let li = shown.get(f.id);
        if (!li) {
          li = el('li', { class: 'failure', 'data-id': String(f.id) },
            el('img', { src: f.image, alt: `failing frame ${f.frame}`, loading: 'lazy' }),
            el('div', { text: `#${f.frame} ${f.source} · ${time(f.captured_unix_us)}` }),
            el('div', { class: 'verdict-fail', text: findingsText(f.findings) }));
          shown.set(f.id, li);
        }
        return li;
      });
      for (const id of [...shown.keys()]) if (!fails.some((f) => f.id === id)) shown.delete(id);
      list.replaceChildren(...items);
    } catch (e) {
      setConn(false, String(e.message || e));
    }
  }
  await refresh();
  setInterval(refresh, 1000);
}

// ---- fleet view ---------------------------------------------------------

// The server checks every document's types; the page still draws each card on
// its own, so one card it cannot draw never stops the others.
const list = (v) => (Array.isArray(v) ? v : []);
const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});

function fleetCard(d) {
  const name = String(d.device);
  let card = document.querySelector(`.device[data-device="${CSS.escape(name)}"]`);
  if (!card) {
    card = $('#device-card').content.firstElementChild.cloneNode(true);
    card.dataset.device = name;
    $('.name', card).textContent = name;
    $('#devices').append(card);
  }
  try {
    const s = obj(d.status);
    const state = d.online ? 'online' : 'offline';
    card.dataset.online = String(Boolean(d.online));
    card.classList.toggle('offline', !d.online);
    const st = $('.state', card);
    st.textContent = d.online ? 'online' : `offline${s.reason ? ' (' + s.reason + ')' : ''}`;
    st.className = `state ${state}`;
    $('.meta', card).textContent = `${s.model || ''} ${s.version ? 'v' + s.version : ''} · ${fmt(d.detections)} detections · last seen ${time(d.last_seen_unix_us)}`;
    const refused = $('.refused', card);
    refused.hidden = !(d.refused > 0);
    refused.textContent = d.refused > 0 ? `${d.refused} message(s) refused; last: ${d.last_refusal || ''}` : '';
    renderCounters($('.counters', card), obj(d.stats));
    drawLatency($('.latency', card), list(d.latency).map((p) => ({ ...obj(p) })));
    renderDefects($('.defects', card), list(d.recent_defects).map(obj));
    card.classList.remove('broken');
    delete card.dataset.error;
  } catch (e) {
    card.classList.add('broken');
    card.dataset.error = String(e.message || e);
    $('.refused', card).hidden = false;
    $('.refused', card).textContent = `cannot draw this device: ${e.message || e}`;
  }
}

// Every page of /api/status (the server answers in pages of `page` devices).
async function fleetStatus() {
  const s = await getJSON('/api/status');
  const devices = list(s.devices);
  while (devices.length < s.devices_total) {
    const next = list((await getJSON(`/api/status?offset=${devices.length}`)).devices);
    if (!next.length) break;
    devices.push(...next);
  }
  return { ...s, devices };
}

function fleetNotes(s) {
  const r = obj(s.refused), l = obj(s.limits);
  const notes = [];
  const refusedMsgs = (r.oversize || 0) + (r.malformed || 0) + (r.bad_topic || 0);
  if (refusedMsgs) notes.push(`${refusedMsgs} message(s) refused (oversize ${r.oversize || 0}, malformed ${r.malformed || 0}, bad topic ${r.bad_topic || 0})`);
  if (r.truncated) notes.push(`${r.truncated} cut to the size limits`);
  if (r.devices_evicted || r.devices_refused) notes.push(`device limit ${l.max_devices}: ${r.devices_evicted || 0} offline device(s) forgotten, ${r.devices_refused || 0} new one(s) not shown`);
  if (r.oversize_disconnects) notes.push(`${r.oversize_disconnects} broker message(s) too large to receive at all (see the log)`);
  const el = $('#fleet-notes');
  el.hidden = !notes.length;
  el.textContent = notes.join(' · ');
}

async function fleetView(status) {
  $('#fleet-view').hidden = false;
  $('#broker').textContent = `(${status.broker}, topics ${status.topic_prefix}/+/…)`;
  $('#title').textContent = 'fleet';
  async function refresh() {
    try {
      const s = await fleetStatus();
      setConn(s.connected, s.connected ? `broker connected · ${s.devices.length} device(s)` : 'broker unreachable');
      $('#no-devices').hidden = s.devices.length > 0;
      fleetNotes(s);
      for (const d of s.devices) fleetCard(obj(d));
      // Devices the server no longer lists (forgotten to make room) leave the page too.
      const listed = new Set(s.devices.map((d) => String(obj(d).device)));
      for (const card of document.querySelectorAll('#devices .device')) if (!listed.has(card.dataset.device)) card.remove();
    } catch (e) {
      setConn(false, String(e.message || e));
    }
  }
  await refresh();
  setInterval(refresh, 1000);
}

async function main() {
  try {
    const status = await getJSON('/api/status');
    $('#mode').textContent = status.mode;
    document.body.dataset.mode = status.mode;
    if (status.mode === 'fleet') await fleetView(status); else await deviceView(status);
    document.body.dataset.ready = 'true';
  } catch (e) {
    setConn(false, `cannot load /api/status: ${e.message || e}`);
  }
}
main();
