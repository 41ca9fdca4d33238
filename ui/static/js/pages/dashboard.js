// Dashboard: the appliance's and the HSM's health, the mounts, how much
// each mount holds, request rates and latencies drawn from sys/metrics, and
// the newest audit events.
import { h, replace, fmtTime, fmtNum, fmtMs, enc } from '../dom.js';
import * as api from '../api.js';
import { ApiError } from '../api.js';
import { card, section, table, dl, badge, button, form, confirmTyped, errorBox, pool, settle, flash, pageHeader } from '../ui.js';
import { snapshot, rates } from '../metrics.js';
import { lineChart, barChart } from '../chart.js';
import { eventsTable } from './audit.js';

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const IFACES = [['rest', 'REST'], ['kmip', 'KMIP'], ['xks', 'XKS']];

// history keeps the scrapes of this tab (the appliance keeps counters, not
// series), so the charts cover the time the dashboard has been open.
const history = [];

export async function render(params, query, ctx) {
  const charts = h('div', { class: 'card-body' }, h('p', { class: 'loading' }, 'Reading metrics…'));
  const activity = card('Activity', charts);
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      const snap = snapshot(await api.metricsText());
      history.push(snap);
      while (history.length > 2 && history[0].t < Date.now() - WINDOW_MS - 60000) history.shift();
      replace(charts, drawActivity());
    } catch (e) {
      replace(charts, errorBox(e));
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  ctx.onLeave(() => { stopped = true; clearTimeout(timer); });

  const mountsCard = section('Mounts', () => mountsView(mountsCard));
  return h('div', { class: 'page dashboard' },
    pageHeader('Dashboard'),
    h('div', { class: 'grid-2' },
      section('Health', healthView),
      section('Contents', countsView)),
    activity,
    h('div', { class: 'grid-2' },
      mountsCard,
      section('Recent audit events', recentAudit)));
}

async function healthView() {
  const { status, body } = await api.health();
  const hsm = body.hsm || {};
  const caps = hsm.capabilities || {};
  const state = status === 200 ? badge('healthy', 'good') : status === 501 ? badge('not initialised', 'warn') : badge(`unhealthy (${status})`, 'bad');
  return h('div', { 'data-testid': 'health' },
    h('p', { class: 'status-line' }, state, ' ', body.version ? `Keyhold ${body.version}` : ''),
    body.problems ? h('ul', { class: 'server-errors' }, body.problems.map((p) => h('li', null, p))) : null,
    dl([
      ['HSM token', hsm.token_label],
      ['Model', [hsm.manufacturer, hsm.model].filter(Boolean).join(' ')],
      ['Serial', hsm.serial_number],
      ['Firmware', hsm.firmware_version],
      ['PKCS#11 library', [hsm.library, hsm.library_version].filter(Boolean).join(' ')],
      ['KEK version', String(hsm.kek_version ?? '')],
      ['RSA-OAEP hashes', (caps.oaep_hashes || []).join(', ') || 'none'],
      ['RSA-AES key wrap', caps.rsa_aes_key_wrap ? 'yes' : 'no (composed from AES key wrap + RSA-OAEP)'],
      ['Server time', fmtTime(body.server_time_utc)],
    ]),
    body.ha ? dl([
      ['Cluster', body.ha.enabled ? `node ${body.ha.hostname || body.ha.node_id}${body.ha.active_node ? ' (leader)' : ''}, ${body.ha.staleness_ms} ms behind` : 'single node'],
    ]) : null,
    body.listeners && Object.keys(body.listeners).length ? dl(Object.entries(body.listeners).sort().map(([path, l]) =>
      [`${l.type === 'kmip' ? 'KMIP' : 'XKS'} listener ${path}/`, l.up ? h('span', null, badge('up', 'good'), ' ', (l.addresses || []).join(', ')) : badge('down', 'bad')])) : null,
    h('details', { class: 'mechs' },
      h('summary', null, `${(caps.mechanisms || []).length} mechanisms`),
      h('div', { class: 'chips' }, (caps.mechanisms || []).map((m) => h('span', { class: 'chip' }, m)))));
}

function tile(label, value, href, note) {
  return h(href ? 'a' : 'div', { class: 'tile', href },
    h('span', { class: 'tile-value' }, value),
    h('span', { class: 'tile-label' }, label),
    note ? h('span', { class: 'tile-note' }, note) : null);
}

async function countOf(path) {
  const r = await settle(() => api.list(path));
  return r.error ? { error: r.error } : { n: r.length, items: r };
}

function countTile(label, c, href) {
  if (c.error) return tile(label, '–', href, c.error.status === 403 ? 'no permission' : c.error.message);
  return tile(label, fmtNum(c.n), href);
}

async function countsView() {
  const ms = await api.mounts();
  if (!ms.length) return h('p', { class: 'empty' }, 'No mounts yet: enable keymgmt, kmip or xks below.');
  const groups = await pool(ms, 2, async (m) => {
    const p = api.mountPath(m.path);
    const tiles = [];
    if (m.type === 'keymgmt') {
      tiles.push(countTile('keys', await countOf(`${p}/key`), `#/keys/${enc(m.path)}`));
      tiles.push(countTile('KMS providers', await countOf(`${p}/kms`), `#/keys/${enc(m.path)}/kms`));
    } else if (m.type === 'kmip') {
      const objects = await settle(() => api.read(`${p}/objects`));
      tiles.push(countTile('KMIP objects', objects.error ? objects : { n: objects.count }, `#/kmip/${enc(m.path)}`));
      const scopes = await countOf(`${p}/scope`);
      tiles.push(countTile('scopes', scopes, `#/kmip/${enc(m.path)}`));
      if (!scopes.error) {
        const roles = (await pool(scopes.items, 3, async (sc) => {
          const r = await countOf(`${p}/scope/${enc(sc)}/role`);
          return (r.items || []).map((role) => [sc, role]);
        })).flat();
        const creds = await pool(roles, 3, ([sc, role]) => countOf(`${p}/scope/${enc(sc)}/role/${enc(role)}/credential`));
        const failed = creds.find((c) => c.error);
        tiles.push(tile('roles', fmtNum(roles.length), `#/kmip/${enc(m.path)}`));
        tiles.push(failed ? countTile('client certificates', failed) : tile('client certificates', fmtNum(creds.reduce((a, c) => a + c.n, 0)), `#/kmip/${enc(m.path)}`));
      }
    } else if (m.type === 'xks') {
      tiles.push(countTile('XKS keys', await countOf(`${p}/key`), `#/xks/${enc(m.path)}`));
      tiles.push(countTile('SigV4 credentials', await countOf(`${p}/credential`), `#/xks/${enc(m.path)}`));
    }
    return h('div', { class: 'count-group' }, h('h3', null, h('code', null, m.path + '/'), ' ', badge(m.type)), h('div', { class: 'tiles' }, tiles));
  });
  return h('div', { 'data-testid': 'counts' }, groups);
}

async function mountsView(mountsCard) {
  const ms = await api.mounts();
  const hrefOf = (m) => m.type === 'keymgmt' ? `#/keys/${enc(m.path)}` : `#/${m.type}/${enc(m.path)}`;
  const out = h('div', { class: 'form-result' });
  return h('div', null,
    table([
      { label: 'Path', render: (m) => h('a', { href: hrefOf(m) }, h('code', null, m.path + '/')) },
      { label: 'Type', render: (m) => badge(m.type) },
      { label: 'Description', render: (m) => m.description },
      { label: '', cls: 'right', render: (m) => button('Disable', async (ev) => {
        const ok = await confirmTyped({ title: `Disable ${m.path}/`, name: m.path, action: 'Disable',
          message: 'Disabling a mount destroys what it holds (keys, credentials, configuration). A mount that still holds keys is refused unless forced.' });
        if (!ok) return;
        ev.target.disabled = true;
        try {
          try {
            await api.del(`sys/mounts/${api.mountPath(m.path)}`);
          } catch (e) {
            // A mount that still holds keys needs force, which destroys
            // them: a second, explicit confirmation.
            if (!(e instanceof ApiError) || e.status !== 409) throw e;
            const force = await confirmTyped({ title: `Destroy the keys of ${m.path}/`, name: m.path, action: 'Destroy and disable',
              message: `${e.errors.join(' ')} Forcing destroys its keys in the HSM: whatever they protect can no longer be decrypted, here or at the clouds they were distributed to.` });
            if (!force) {
              ev.target.disabled = false;
              return;
            }
            await api.del(`sys/mounts/${api.mountPath(m.path)}`, { force: 'true' });
          }
          flash(`Disabled ${m.path}/`);
          mountsCard.reload();
        } catch (e) {
          replace(out, errorBox(e));
          ev.target.disabled = false;
        }
      }, { kind: 'danger small' }) },
    ], ms, { empty: 'No mounts.' }),
    out,
    h('h3', null, 'Enable a mount'),
    form({
      testid: 'mount-form',
      submit: 'Enable',
      cls: 'inline',
      fields: [
        { name: 'type', label: 'Type', kind: 'select', value: 'keymgmt', options: [['keymgmt', 'keymgmt (Key Management)'], ['kmip', 'kmip (KMIP server)'], ['xks', 'xks (AWS XKS proxy)']] },
        { name: 'path', label: 'Path', required: true, pattern: /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, patternMsg: 'segments of letters, digits, ".", "_" and "-".',
          check: (v) => v.length > 128 ? 'At most 128 characters.' : ['sys', 'auth', 'ui'].includes(v.split('/')[0]) ? 'That path is reserved.' : null },
        { name: 'description', label: 'Description' },
      ],
      onSubmit: async (v) => {
        await api.write(`sys/mounts/${api.mountPath(v.path)}`, { type: v.type, description: v.description || '' });
        flash(`Enabled ${v.type} at ${v.path}/`);
        mountsCard.reload();
        return null;
      },
    }));
}

async function recentAudit() {
  const devices = Object.keys((await api.read('sys/audit')) || {}).map((p) => p.replace(/\/$/, '')).sort();
  if (!devices.length) return h('p', { class: 'empty' }, 'No audit device is enabled. ', h('a', { href: '#/audit' }, 'Enable one'), '.');
  const d = await api.read(`sys/audit-log/${api.mountPath(devices[0])}`, { limit: 8, type: 'response' });
  return h('div', null, eventsTable(d.events || [], { compact: true }),
    h('p', null, h('a', { href: `#/audit/${enc(devices[0])}` }, 'All events of ', h('code', null, devices[0] + '/'), ' →')));
}

// topPerInterface keeps the n busiest operations of each interface, so a
// quiet interface is not hidden by a busy one.
function topPerInterface(byOp, n) {
  const groups = {};
  for (const [k, v] of Object.entries(byOp)) (groups[k.split(' ')[0]] ||= []).push([k, v]);
  return Object.values(groups).flatMap((g) => g.sort((a, b) => b[1] - a[1]).slice(0, n));
}

function drawActivity() {
  if (history.length === 0) return h('p', { class: 'loading' }, 'Reading metrics…');
  const cur = history[history.length - 1];
  // The time axis covers what this tab has seen: 30 seconds to five minutes.
  const span = Math.min(WINDOW_MS, Math.max(30000, Date.now() - history[0].t));
  const pairs = [];
  for (let i = 1; i < history.length; i++) pairs.push([history[i].t, rates(history[i - 1], history[i])]);
  const ser = (key, cls, name, pick) => ({ name, cls, points: pairs.map(([t, r]) => [t, r[key] ? pick(r[key]) : 0]) });
  const rateChart = lineChart({
    title: 'Requests per second, by interface', unit: '/s', window: span, testid: 'chart-rate',
    series: IFACES.map(([k, n]) => ser(k, 'c-' + k, n, (x) => x.rps)),
  });
  const latChart = lineChart({
    title: 'Latency p95 (ms), by interface', unit: 'ms', window: span, testid: 'chart-latency',
    series: [
      ser('rest', 'c-rest', 'REST', (x) => x.p95 * 1000),
      ser('kmip', 'c-kmip', 'KMIP', (x) => x.p95 * 1000),
      ser('xks', 'c-xks', 'XKS', (x) => x.p95 * 1000),
      ser('hsm', 'c-hsm', 'HSM operations', (x) => x.p95 * 1000),
    ],
  });
  const last = pairs.length ? pairs[pairs.length - 1][1] : {};
  const nowTable = table([
    { label: 'Interface', render: (r) => r[1] },
    { label: 'Requests since start', cls: 'num', render: (r) => fmtNum(cur.requests[r[0]] || 0) },
    { label: 'req/s now', cls: 'num', render: (r) => fmtNum(last[r[0]]?.rps ?? NaN) },
    { label: 'errors/s now', cls: 'num', render: (r) => fmtNum(last[r[0]]?.eps ?? NaN) },
    { label: 'p50', cls: 'num', render: (r) => fmtMs(last[r[0]]?.p50) },
    { label: 'p95', cls: 'num', render: (r) => fmtMs(last[r[0]]?.p95) },
    { label: 'mean since start', cls: 'num', render: (r) => cur.latency.count[r[0]] ? fmtMs(cur.latency.sum[r[0]] / cur.latency.count[r[0]]) : '–' },
  ], IFACES, { cls: 'compact' });
  const g = cur.gauges;
  const hitRatio = g.cacheHits + g.cacheMisses > 0 ? g.cacheHits / (g.cacheHits + g.cacheMisses) : NaN;
  return h('div', null,
    h('div', { class: 'grid-2' }, rateChart, latChart),
    pairs.length === 0 ? h('p', { class: 'help' }, 'Rates and latencies appear after the second reading (every 2 s while this page is open).') : null,
    h('div', { class: 'grid-2' },
      barChart({ title: 'Requests since start, by operation (top 5 per interface)', testid: 'chart-ops', max: 15,
        bars: topPerInterface(cur.byOp, 5).map(([label, value]) => ({ label, value, cls: 'c-' + label.split(' ')[0] })) }),
      barChart({ title: 'Errors since start, by kind', testid: 'chart-errors', empty: 'No errors.',
        bars: Object.entries(cur.errorsByKind).map(([label, value]) => ({ label, value, cls: 'c-err' })) })),
    nowTable,
    h('p', { class: 'help' },
      `HSM sessions in use: ${fmtNum(g.sessionsInUse ?? NaN)} of ${fmtNum(g.sessions ?? NaN)}; unwrap cache hit ratio ${Number.isFinite(hitRatio) ? (hitRatio * 100).toFixed(0) + '%' : '–'}; open KMIP connections: ${fmtNum(g.kmipConnections ?? 0)}.`));
}
