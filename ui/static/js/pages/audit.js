// Audit: the newest events of a file device (sys/audit-log), filtered by
// key, principal, interface, operation and result, with the hash chain's
// verification state; devices can be enabled and disabled here (sudo).
import { h, replace, fmtTime, enc } from '../dom.js';
import * as api from '../api.js';
import { card, section, table, badge, button, form, confirmTyped, errorBox, flash, pageHeader, run } from '../ui.js';

const FILTERS = ['key', 'principal', 'interface', 'operation', 'result', 'type', 'limit'];

function shortHMAC(v) {
  return v.startsWith('hmac-sha256:') ? 'hmac:' + v.slice(12, 20) + '…' : v;
}

// principalText says who made a request, whatever the interface.
export function principalText(a = {}) {
  const parts = [];
  if (a.cert_serial) parts.push(`cert ${a.cert_serial.length > 14 ? a.cert_serial.slice(0, 12) + '…' : a.cert_serial}`);
  if (a.scope || a.role) parts.push(`${a.scope || ''}/${a.role || ''}`);
  if (a.access_key_id) parts.push(`key id ${a.access_key_id}`);
  if (a.principal_arn) parts.push(a.principal_arn);
  if (a.token_accessor) parts.push('token ' + shortHMAC(a.token_accessor));
  if (a.policies && a.policies.length) parts.push('[' + a.policies.join(', ') + ']');
  return parts.join(' ') || (a.remote_addr ? 'from ' + a.remote_addr : '–');
}

function resultCell(ev) {
  const r = ev.response;
  if (!r) return badge('request', 'muted');
  const bad = r.status >= 400 || r.error || r.xks_error_name;
  return h('span', null, badge(String(r.status || (bad ? 'error' : 'ok')), bad ? 'bad' : 'good'),
    r.xks_error_name ? ' ' + r.xks_error_name : '',
    r.kmip_result_reason && bad ? ' ' + r.kmip_result_reason : '',
    r.error ? h('span', { class: 'err-text' }, ' ' + r.error) : '');
}

function whatCell(ev) {
  const q = ev.request || {};
  const objs = (q.objects || []).filter((o) => !(q.path || '').split('/').includes(o));
  return h('span', null, q.path ? h('code', null, q.path) : null, objs.length ? h('span', { class: 'objects' }, (q.path ? ' ' : '') + objs.join(', ')) : null);
}

// eventsTable renders events (newest first); compact leaves out details.
export function eventsTable(events, { compact = false } = {}) {
  const cols = [
    { label: 'Time', cls: 'nowrap', render: (e) => fmtTime(e.time) },
    { label: 'Interface', render: (e) => badge(e.interface, 'c-' + e.interface) },
    { label: 'Operation', render: (e) => e.request?.operation || '' },
    { label: 'Path / objects', render: whatCell },
    { label: 'Result', render: resultCell },
  ];
  if (!compact) {
    cols.splice(2, 0, { label: 'Principal', render: (e) => principalText(e.auth) });
    cols.unshift({ label: 'Seq', cls: 'num', render: (e) => String(e.seq) });
    cols.push({ label: '', render: (e) => h('details', { class: 'event-json' }, h('summary', null, 'event'), h('pre', null, JSON.stringify(e, null, 2))) });
  }
  return table(cols, events, { empty: 'No matching events.', cls: 'events' + (compact ? ' compact' : '') });
}

function verification(v) {
  if (!v) return null;
  if (v.intact) {
    return h('div', { class: 'verify good', 'data-testid': 'verification' },
      h('strong', null, 'Chain intact. '),
      `${v.events} events, seq ${v.first_seq} to ${v.last_seq}, each hash and link checked.`,
      (v.notes || []).map((n) => h('div', { class: 'note' }, n)));
  }
  const p = v.problem || {};
  return h('div', { class: 'verify bad', role: 'alert', 'data-testid': 'verification' },
    h('strong', null, 'Chain broken. '), `Line ${p.line}${p.seq ? ` (seq ${p.seq})` : ''}: ${p.what}`,
    (v.notes || []).map((n) => h('div', { class: 'note' }, n)));
}

function deviceNames(d) {
  return Object.keys(d || {}).map((p) => p.replace(/\/$/, '')).sort();
}

export async function render(params, query) {
  const devicesBox = h('div');
  const page = h('div', { class: 'page audit' }, pageHeader('Audit'), devicesBox);
  let devices;
  try {
    devices = await api.read('sys/audit');
  } catch (e) {
    replace(devicesBox, errorBox(e));
    return page;
  }
  const names = deviceNames(devices);
  const dev = params.device || names[0];
  page.append(deviceCard(devices, dev));
  if (!dev) return page;
  if (!names.includes(dev)) {
    page.append(card(null, errorBox(new Error(`no audit device ${dev}/`))));
    return page;
  }
  page.append(eventsCard(dev, query), hashCard(dev));
  return page;
}

function deviceCard(devices, current) {
  const names = deviceNames(devices);
  const out = h('div', { class: 'form-result' });
  const rows = names.map((n) => ({ name: n, d: devices[n + '/'] }));
  return card('Devices',
    table([
      { label: 'Device', render: (r) => h('a', { href: `#/audit/${enc(r.name)}`, class: r.name === current ? 'current' : '' }, h('code', null, r.name + '/')) },
      { label: 'Type', render: (r) => r.d.type },
      { label: 'File', render: (r) => h('code', null, r.d.options?.file_path || '') },
      { label: 'Accessors as HMAC', render: (r) => r.d.options?.hmac_accessor === 'false' ? 'no' : 'yes' },
      { label: '', cls: 'right', render: (r) => button('Disable', async (ev) => {
        if (!await confirmTyped({ title: `Disable audit device ${r.name}/`, name: r.name, action: 'Disable',
          message: 'Requests are refused while no device can write (fail closed) only if another device is enabled; with none, requests go unaudited.' })) return;
        await run(ev.target, out, async () => {
          await api.del(`sys/audit/${api.mountPath(r.name)}`);
          flash(`Disabled audit device ${r.name}/`);
          window.location.hash = '#/audit';
        });
      }, { kind: 'danger small' }) },
    ], rows, { empty: 'No audit device is enabled: requests are not audited.' }),
    out,
    h('details', { open: names.length === 0 },
      h('summary', null, 'Enable a file device'),
      form({
        testid: 'audit-enable-form',
        submit: 'Enable',
        fields: [
          { name: 'path', label: 'Device path', value: 'file', required: true, pattern: /^[A-Za-z0-9_.-]+$/, patternMsg: 'letters, digits, ".", "_" and "-".' },
          { name: 'file_path', label: 'File on the appliance', required: true, pattern: /^\//, patternMsg: 'an absolute path.', placeholder: '/var/log/keyhold/audit.log' },
          { name: 'hmac_accessor', label: 'Write token accessors as HMACs', kind: 'checkbox', value: true },
        ],
        onSubmit: async (v) => {
          await api.write(`sys/audit/${enc(v.path)}`, { type: 'file', options: { file_path: v.file_path, hmac_accessor: String(!!v.hmac_accessor) } });
          flash(`Enabled audit device ${v.path}/`);
          window.location.hash = `#/audit/${enc(v.path)}`;
          return null;
        },
      })));
}

function eventsCard(dev, query) {
  const q = {};
  for (const k of FILTERS) if (query[k]) q[k] = query[k];
  if (!q.type) q.type = 'response';
  const filters = form({
    testid: 'audit-filters',
    submit: 'Filter',
    cls: 'inline filters',
    fields: [
      { name: 'key', label: 'Key or object', value: q.key, check: (v) => v.length > 256 ? 'At most 256 characters.' : null },
      { name: 'principal', label: 'Principal', value: q.principal, help: 'accessor, policy, cert serial, scope/role name, access key id, ARN or address' },
      { name: 'interface', label: 'Interface', kind: 'select', value: q.interface || '', options: [['', 'all'], ['rest', 'REST'], ['kmip', 'KMIP'], ['xks', 'XKS']] },
      { name: 'operation', label: 'Operation', value: q.operation, pattern: /^[A-Za-z_ ]{1,64}$/, patternMsg: 'an operation name (read, update, Create, Encrypt…).' },
      { name: 'result', label: 'Result', kind: 'select', value: q.result || '', options: [['', 'all'], ['ok', 'success'], ['error', 'failure']] },
      { name: 'type', label: 'Events', kind: 'select', value: q.type, options: [['response', 'completed requests'], ['request', 'request events'], ['all', 'both']] },
      { name: 'limit', label: 'Show', kind: 'number', value: q.limit || 100, min: 1, max: 1000 },
    ],
    onSubmit: async (v) => {
      const sp = new URLSearchParams();
      for (const k of FILTERS) if (v[k] !== undefined && v[k] !== '') sp.set(k, String(v[k]));
      window.location.hash = `#/audit/${enc(dev)}?${sp.toString()}`;
      return null;
    },
  });
  const verifyBox = h('div');
  const listBox = h('div', { 'data-testid': 'audit-events' });
  const more = h('div');
  const loadPage = async (before) => {
    const d = await api.read(`sys/audit-log/${api.mountPath(dev)}`, { ...q, before_seq: before, verify: before ? undefined : 'true' });
    if (!before) replace(verifyBox, verification(d.verification));
    const evs = d.events || [];
    listBox.append(eventsTable(evs));
    replace(more, d.more && evs.length ? button('Older events', async (ev) => {
      // Not run(ev.target, more, ...): loadPage redraws "more" with the
      // next button, which run would then clear.
      ev.target.disabled = true;
      try {
        await loadPage(evs[evs.length - 1].seq);
      } catch (e) {
        replace(more, errorBox(e));
      } finally {
        ev.target.disabled = false;
      }
    }, { testid: 'audit-older' }) : null,
    h('p', { class: 'help' }, `Read ${(d.scanned_bytes / 1024).toFixed(0)} KiB of ${d.file_path}` + (d.unreadable ? `; ${d.unreadable} lines are not events` : '') + '.'));
  };
  const body = h('div', null, verifyBox, listBox, more);
  loadPage().catch((e) => replace(body, errorBox(e)));
  return card(`Events of ${dev}/`, filters, body);
}

function hashCard(dev) {
  return card('Find a value',
    h('p', { class: 'help' }, 'Secrets, tokens and key material are written only as HMACs under the device\u2019s key. Enter a value to get the HMAC this device writes for it (sys/audit-hash), then search the events for it.'),
    form({
      submit: 'Compute HMAC',
      cls: 'inline',
      fields: [{ name: 'input', label: 'Value', kind: 'password', required: true }],
      onSubmit: async (v) => {
        const d = await api.write(`sys/audit-hash/${api.mountPath(dev)}`, { input: v.input });
        return h('p', null, 'HMAC: ', h('code', { class: 'wrap' }, d.hash));
      },
    }));
}
