// The results page: plain browser JavaScript served by the admin API (no build step, no CDN).
// Everything it shows comes from the API's JSON and is written with textContent or attributes,
// never as HTML. The token is asked once and kept in this tab's sessionStorage.
const TOKEN_KEY = 'expstream.token';
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let me = null;
let selected = decodeURIComponent(location.hash.slice(1)) || null;
let timer = null;
const charts = new Map();

/** How the page prints a number; the browser test prints the API's numbers the same way. */
export function fmt(x) {
  if (x === null || x === undefined) return '–';
  if (typeof x !== 'number') return String(x);
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}
const interval = (i) => (i ? `[${fmt(i[0])}, ${fmt(i[1])}]` : '–');
const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–');

/** Evidence is JSON text: shown indented, as text, at most 4,000 characters. */
function pretty(json) {
  let text = json;
  try {
    text = JSON.stringify(JSON.parse(json), null, 1);
  } catch {
    // shown as it came
  }
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'className') node.className = v;
    else node.setAttribute(k, String(v));
  }
  return node;
}
function row(cells, attrs = {}) {
  const tr = el('tr', undefined, attrs);
  for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
  return tr;
}
const num = (x, testid) => el('td', fmt(x), { className: 'num', ...(testid ? { 'data-testid': testid } : {}) });
function fill(tableId, rows) {
  const body = $(tableId).tBodies[0];
  if (rows.length === 0) {
    const columns = $(tableId).tHead.rows[0].cells.length;
    rows = [row([el('td', 'none', { colspan: columns, className: 'muted' })])];
  }
  body.replaceChildren(...rows);
}

class Unauthorized extends Error {}
async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: { ...(init.headers ?? {}), authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
  if (response.status === 401) throw new Unauthorized('the token is not valid');
  const body = await response.json().catch(() => ({}));
  return { status: response.status, body };
}

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  clearTimeout(timer);
  $('app').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('token').focus();
}

async function start() {
  try {
    const who = await api('/whoami');
    if (who.status !== 200) return showLogin(who.body.message ?? `the API answered ${who.status}`);
    me = who.body;
  } catch (err) {
    return showLogin(err instanceof Unauthorized ? 'that token is not valid' : `cannot reach the API: ${err.message}`);
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('who').textContent = `${me.principal} (${me.roles.join(', ')})`;
  $('command').hidden = !me.roles.includes('operator');
  await refresh();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const list = await api('/experiments');
    renderExperiments(list.body.experiments ?? []);
    if (selected) await renderExperiment(selected);
    $('live').textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin('the token is no longer valid');
    $('live').textContent = `not updating: ${err.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

// The list's rows are kept (keyed by experiment) and updated in place on every poll: a row
// replaced every second would lose a click landing during the swap, and the focus and hover
// on it (a browser test found it: its click reached a row the poll had just detached).
const experimentRows = new Map();
function renderExperiments(experiments) {
  if (!selected && experiments.length > 0) selected = experiments[0].experimentId;
  if (experiments.length === 0) {
    experimentRows.clear();
    return fill('experiments', []);
  }
  const rows = experiments.map((e) => {
    let tr = experimentRows.get(e.experimentId);
    if (!tr) {
      tr = row([el('td', e.experimentId), el('td', '', { 'data-testid': `state:${e.experimentId}` }), num(null)], { 'data-experiment': e.experimentId });
      tr.addEventListener('click', () => select(e.experimentId));
    }
    setText(tr.cells[1], e.status ?? '–');
    setText(tr.cells[2], fmt(e.users));
    const className = e.experimentId === selected ? 'selected' : '';
    if (tr.className !== className) tr.className = className;
    return tr;
  });
  experimentRows.clear();
  for (const [i, e] of experiments.entries()) experimentRows.set(e.experimentId, rows[i]);
  const body = $('experiments').tBodies[0];
  if (rows.length !== body.rows.length || rows.some((tr, i) => body.rows[i] !== tr)) body.replaceChildren(...rows);
}
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
function select(experimentId) {
  selected = experimentId;
  location.hash = encodeURIComponent(selected);
  for (const c of charts.values()) c.destroy();
  charts.clear();
  void refresh();
}

async function renderExperiment(id) {
  const path = `/experiments/${encodeURIComponent(id)}`;
  const [results, history, anomalies, audit] = await Promise.all([api(`${path}/results`), api(`${path}/history`), api(`${path}/anomalies`), api(`/audit?limit=50&experimentId=${encodeURIComponent(id)}`)]);
  if (results.status !== 200) {
    $('detail').hidden = true;
    return;
  }
  $('detail').hidden = false;
  const r = results.body;
  $('exp-title').textContent = id;
  $('exp-status').textContent = r.status ?? 'unknown';
  $('exp-status').className = `badge ${r.status ?? ''}`;
  const s = r.statusDetail;
  $('exp-since').textContent = s ? `${r.status} since ${when(s.since)} by ${s.by}: ${s.reason}` : '';
  $('halt').hidden = r.status !== 'RUNNING';
  $('resume').hidden = r.status !== 'HALTED';
  fill('variants', r.variants.map((v) => row([el('td', v.variantId), num(v.plannedWeight), num(v.users, `users:${v.variantId}`), num(v.share), num(v.conflicts)])));
  fill('metrics', r.variants.flatMap((v) => v.metrics.map((m) => {
    const key = `${m.metric}:${v.variantId}`;
    const vc = m.versusControl;
    return row([
      el('td', `${m.metric} (${m.role}, ${m.type})`), el('td', v.variantId), num(m.counts.users, `m-users:${key}`), num(m.counts.conversions, `m-conv:${key}`), num(m.counts.events, `m-events:${key}`), num(m.counts.sum, `m-sum:${key}`),
      num(m.mean, `m-mean:${key}`), el('td', interval(m.interval95), { 'data-testid': `m-ci:${key}` }), num(vc?.difference, `m-diff:${key}`), el('td', interval(vc?.welch95)),
      el('td', vc?.alwaysValid ? interval([vc.alwaysValid.lower, vc.alwaysValid.upper]) : '–', { 'data-testid': `m-av:${key}` }),
    ]);
  })));
  const fired = anomalies.body.anomalies ?? [];
  fill('anomalies', fired.slice().reverse().map((a) => {
    const evidence = el('pre', pretty(a.evidence), { className: 'evidence' });
    const cell = el('td', undefined, { className: 'wrap' });
    cell.append(evidence);
    return row([el('td', when(a.detectedAt)), el('td', a.type), el('td', a.severity), el('td', a.variantId ?? '–'), el('td', a.metric ?? '–'), el('td', a.halted ? 'halted' : 'no'), cell], { className: a.halted ? 'fired' : '', 'data-anomaly': a.type });
  }));
  if (audit.status === 200) {
    fill('audit', audit.body.records.slice().reverse().map((a) => row([num(a.sequence), el('td', when(a.decidedAt)), el('td', a.decision), el('td', a.action ?? '–'), el('td', a.issuer ?? '–'), el('td', a.reason, { className: 'wrap' })], { 'data-audit': a.action ?? '' })));
  } else {
    fill('audit', [row([el('td', `not shown: ${audit.body.message ?? audit.status}`, { colspan: 6 })])]);
  }
  renderCharts(r, history.body.points ?? [], fired);
}

/** Per chart, the times a check fired: read by the chart's draw hook at every redraw. */
const marksOf = new Map();

/** Vertical lines at the times a check fired (uPlot draw hook). */
function firedMarks(key) {
  return {
    hooks: {
      draw: [(u) => {
        const times = marksOf.get(key) ?? [];
        const { ctx } = u;
        ctx.save();
        ctx.strokeStyle = '#b3261e';
        ctx.lineWidth = 2;
        for (const t of times) {
          const x = u.valToPos(t / 1000, 'x', true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    },
  };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
function chart(key, container, title, series, data, marks, extraAxes = []) {
  marksOf.set(key, marks);
  const width = Math.max(280, container.clientWidth || 600);
  const existing = charts.get(key);
  if (existing && existing.series.length === series.length + 1) {
    existing.setData(data);
    existing.redraw(false, false);
    return;
  }
  existing?.destroy();
  const holder = container.querySelector(`[data-chart="${CSS.escape(key)}"]`) ?? container.appendChild(el('div', undefined, { 'data-chart': key }));
  holder.replaceChildren();
  const options = { title, width, height: 220, series: [{}, ...series], plugins: [firedMarks(key)], axes: [{}, { size: 70 }, ...extraAxes] };
  // uPlot comes from /ui/uplot.js (the uplot package from npm, served by the API).
  charts.set(key, new globalThis.uPlot(options, data, holder));
}

function renderCharts(r, points, fired) {
  if (!globalThis.uPlot || points.length === 0) return;
  const xs = points.map((p) => p.at / 1000);
  const variants = r.variants.map((v) => v.variantId);
  const total = points.map((p) => variants.reduce((n, v) => n + (p.users[v] ?? 0), 0));
  const userSeries = [];
  const userData = [xs];
  variants.forEach((v, i) => {
    const color = COLORS[i % COLORS.length];
    userSeries.push({ label: `${v} users`, stroke: color, width: 2 });
    userData.push(points.map((p) => p.users[v] ?? 0));
    userSeries.push({ label: `${v} planned`, stroke: color, dash: [6, 4] });
    userData.push(total.map((t) => t * (r.variants[i].plannedWeight ?? 0)));
  });
  const srmTimes = fired.filter((a) => a.type === 'SAMPLE_RATIO_MISMATCH').map((a) => a.detectedAt);
  chart('users', $('chart-users'), 'Users per variant (dashed: the planned split)', userSeries, userData, srmTimes);
  chart('srm', $('chart-srm'), 'SRM evidence: log Bayes factor against the halting threshold (right axis: chi-square p)', [{ label: 'log BF', stroke: '#1f77b4', width: 2 }, { label: 'threshold', stroke: '#b3261e', dash: [6, 4] }, { label: 'chi-square p', stroke: '#999', scale: 'p' }], [xs, points.map((p) => p.srm?.logBayesFactor ?? null), points.map((p) => p.srm?.threshold ?? null), points.map((p) => p.srm?.chiSquarePValue ?? null)], srmTimes, [{ scale: 'p', side: 1, grid: { show: false }, label: 'chi-square p' }]);
  const guardrails = new Map();
  points.forEach((p, i) => {
    for (const g of p.guardrails) {
      const key = `${g.metric}:${g.variantId}`;
      if (!guardrails.has(key)) guardrails.set(key, { g, rows: new Array(points.length).fill(null) });
      guardrails.get(key).rows[i] = g;
    }
  });
  const box = $('charts-guardrails');
  if (guardrails.size === 0 && box.childElementCount === 0) box.append(el('p', 'no guardrail has an estimate yet', { className: 'muted' }));
  else if (guardrails.size > 0) box.querySelector('p.muted')?.remove();
  for (const [key, { g, rows }] of guardrails) {
    const times = fired.filter((a) => a.type === 'GUARDRAIL_REGRESSION' && a.metric === g.metric && a.variantId === g.variantId).map((a) => a.detectedAt);
    chart(`guardrail:${key}`, box, `${g.metric}, ${g.variantId} − control: difference, always-valid ${g.side} bound, tolerance`, [
      { label: 'difference', stroke: '#1f77b4', width: 2 }, { label: `${g.side} bound`, stroke: '#2ca02c' }, { label: 'tolerance', stroke: '#b3261e', dash: [6, 4] },
    ], [xs, rows.map((x) => x?.difference ?? null), rows.map((x) => x?.bound ?? null), rows.map((x) => x?.toleranceLine ?? null)], times);
  }
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  void start();
});
$('signout').addEventListener('click', () => showLogin());
let action = 'halt';
for (const id of ['halt', 'resume']) $(id).addEventListener('click', () => (action = id));
$('command').addEventListener('submit', async (event) => {
  event.preventDefault();
  const reason = $('command-reason').value.trim();
  $('command-result').textContent = `${action === 'halt' ? 'halting' : 'resuming'}…`;
  try {
    const { status, body } = await api(`/experiments/${encodeURIComponent(selected)}/${action}`, { method: 'POST', body: JSON.stringify({ reason }) });
    $('command-result').textContent = status === 200 ? `${body.decision}: audit record ${body.auditSequence}` : `${status} ${body.error ?? body.decision ?? ''}: ${body.message ?? body.reason ?? ''}`;
    if (status === 200) $('command-reason').value = '';
  } catch (err) {
    $('command-result').textContent = err.message;
  }
  void refresh();
});
window.addEventListener('resize', () => {
  for (const c of charts.values()) {
    const width = Math.max(280, c.root.parentElement?.parentElement?.clientWidth || c.width);
    if (width !== c.width) c.setSize({ width, height: c.height });
  }
});

if (token) void start();
else showLogin();
