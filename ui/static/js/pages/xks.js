// XKS: an xks mount's proxy health (listener, HSM, request outcomes from
// the metrics), its configuration and CA, the SigV4 credentials (the secret
// is shown once) and the keys, with their usage and enable/disable.
import { h, replace, fmtTime, fmtNum, enc } from '../dom.js';
import * as api from '../api.js';
import { ApiError } from '../api.js';
import { card, section, table, dl, badge, button, form, confirmTyped, flash, run, download, secretOnce, pool, settle, pageHeader } from '../ui.js';
import { snapshot } from '../metrics.js';
import { pickMount } from './common.js';

const KEY_RE = /^[A-Za-z0-9._-]{1,128}$/;
// A key store's URI path prefix; "/" is the empty prefix (the server takes
// "" and "/" alike), so that it survives the list field, which drops empty
// items.
const PREFIX_RE = /^(\/|[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*)$/;
const HOSTPORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;

export async function render(params) {
  const pm = await pickMount('xks', params.mount, (p) => `#/xks/${enc(p)}`);
  if (pm.missing) return h('div', { class: 'page' }, pageHeader('XKS'), pm.missing);
  const { p, tabs, mount } = pm;
  const once = h('div', { class: 'once-holder' });
  const keys = section('Keys', () => keysView(p, () => keys.reload()));
  const creds = section('SigV4 credentials', () => credsView(p, once, () => creds.reload()));
  const cfg = section('Configuration', () => configView(p, mount.path, () => { cfg.reload(); healthCard.reload(); creds.reload(); }));
  const healthCard = section('Proxy health', () => healthView(p));
  return h('div', { class: 'page xks' },
    pageHeader('XKS proxy', h('span', { class: 'mount' }, h('code', null, mount.path + '/'))),
    tabs,
    h('div', { class: 'grid-2' }, healthCard, cfg),
    keys,
    once,
    creds);
}

async function readConfig(p) {
  try {
    return await api.read(`${p}/config`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

async function healthView(p) {
  const [c, hl, mt] = await Promise.all([readConfig(p), api.health(), settle(async () => snapshot(await api.metricsText()))]);
  const listening = c && c.listening && c.listening.length;
  const rows = [];
  if (!mt.error) {
    for (const prefix of (c && c.uri_path_prefixes) || []) {
      // The metrics name a key store by its URI path (xks.URIPath).
      const store = (prefix ? '/' + prefix : '') + '/kms/xks/v1';
      const total = mt.xksByStore[store] || 0;
      const errs = Object.entries(mt.xksErrors).filter(([k]) => k.startsWith(store + ': '));
      rows.push({ prefix, total, errors: errs.reduce((a, [, v]) => a + v, 0), names: errs.map(([k, v]) => `${k.slice(store.length + 2)} ×${v}`) });
    }
  }
  return h('div', { 'data-testid': 'xks-health' },
    dl([
      ['Listener', listening ? h('span', null, badge('up', 'good'), ' ', c.listening.join(', ')) : badge(c ? 'not listening' : 'not configured', 'bad')],
      ['URI paths', c ? (c.uri_paths || []).join(', ') : '–'],
      ['HSM', hl.status === 200 ? badge('healthy', 'good') : badge(`unhealthy (${hl.status})`, 'bad')],
    ]),
    mt.error ? h('p', { class: 'help' }, 'Request counts need read access to sys/metrics.') : table([
      { label: 'Key store (prefix)', render: (r) => h('code', null, r.prefix || '(empty)') },
      { label: 'Requests', cls: 'num', render: (r) => fmtNum(r.total) },
      { label: 'Errors', cls: 'num', render: (r) => fmtNum(r.errors) },
      { label: 'By error', render: (r) => r.names.join(', ') || '–' },
    ], rows, { empty: 'No key store configured.', cls: 'compact' }),
    h('p', { class: 'help' }, 'AWS KMS checks the proxy with a signed GetHealthStatus, an AES-GCM round trip in the HSM; a browser cannot sign for it, so this view shows the listener, the HSM check and the counted outcomes.'));
}

// regionPairs lists a configuration's key store regions as PREFIX=REGION,
// the empty prefix as /.
function regionPairs(c) {
  return Object.entries((c && c.key_store_regions) || {}).sort(([a], [b]) => a.localeCompare(b)).map(([x, r]) => `${x || '/'}=${r}`);
}

async function configView(p, mountPath, reload) {
  const c = await readConfig(p);
  const d = c || { listen_addrs: ['127.0.0.1:8443'], uri_path_prefixes: [], tls_internal_ca: true, tls_dns_names: ['localhost'], tls_ip_addresses: ['127.0.0.1'], max_plaintext_bytes: 8192, max_aad_bytes: 16384, rate_limit: 0 };
  let ca = null;
  if (c && c.tls_internal_ca) ca = await settle(() => api.read(`${p}/ca`));
  return h('div', null,
    c ? dl([
      ['Listen addresses', (c.listen_addrs || []).join(', ')],
      ['URI path prefixes', (c.uri_path_prefixes || []).map((x) => x || '(empty)').join(', ')],
      ['TLS', c.tls_internal_ca ? `internal CA (${[...(c.tls_dns_names || []), ...(c.tls_ip_addresses || [])].join(', ')})` : 'operator certificate'],
      ['Mutual TLS', c.mtls_client_ca ? `on; subjects ${(c.mtls_allowed_subjects || []).join(', ') || 'any'}` : 'off'],
      ['Limits', `plaintext ${c.max_plaintext_bytes} B, AAD ${c.max_aad_bytes} B, ${c.rate_limit ? c.rate_limit + ' req/s per prefix' : 'no rate limit'}`],
      ['Key store regions', regionPairs(c).join(', ') || 'any region (not checked)'],
      ['Updated', fmtTime(c.updated_at)],
    ]) : h('p', { class: 'notice' }, 'Not configured yet.'),
    ca && !ca.error ? h('div', { class: 'actions' }, button('Download CA certificate', () => download(`xks-${mountPath.replace(/\//g, '_')}-ca.pem`, ca.certificate, 'application/x-pem-file'), { kind: 'small' })) : null,
    h('details', { open: !c }, h('summary', null, c ? 'Change' : 'Configure'), form({
      testid: 'xks-config',
      submit: 'Save configuration',
      fields: [
        { name: 'listen_addrs', label: 'Listen addresses', kind: 'list', required: true, value: d.listen_addrs, pattern: HOSTPORT, patternMsg: 'host:port.' },
        { name: 'uri_path_prefixes', label: 'URI path prefixes (key stores)', help: '/ is the empty prefix (URI path /kms/xks/v1)', kind: 'list', required: true, value: d.uri_path_prefixes.map((x) => x || '/'), pattern: PREFIX_RE, patternMsg: '/ (the empty prefix), or segments of letters, digits, "_" and "-".' },
        { name: 'tls_internal_ca', label: 'Use the internal CA for the server certificate (dev and test: AWS trusts only public CAs)', kind: 'checkbox', value: d.tls_internal_ca, sendEmpty: true },
        { name: 'tls_dns_names', label: 'Certificate DNS names', kind: 'list', sendEmpty: true, value: d.tls_dns_names, showIf: (v) => v.tls_internal_ca },
        { name: 'tls_ip_addresses', label: 'Certificate IP addresses', kind: 'list', sendEmpty: true, value: d.tls_ip_addresses, showIf: (v) => v.tls_internal_ca, pattern: /^[0-9a-fA-F:.]+$/, patternMsg: 'an IP address.' },
        { name: 'tls_cert', label: 'Server certificate (PEM)', kind: 'textarea', showIf: (v) => !v.tls_internal_ca, required: !c || !c.tls_cert, check: (v) => v.includes('BEGIN CERTIFICATE') ? null : 'A PEM certificate.' },
        { name: 'tls_key', label: 'Server key (PEM; imported into the HSM, not kept)', kind: 'password', showIf: (v) => !v.tls_internal_ca },
        { name: 'max_plaintext_bytes', label: 'Max plaintext bytes', kind: 'number', min: 4300, value: d.max_plaintext_bytes },
        { name: 'max_aad_bytes', label: 'Max AAD bytes', kind: 'number', min: 8192, value: d.max_aad_bytes },
        { name: 'rate_limit', label: 'Rate limit (req/s per prefix, 0 = none)', kind: 'number', min: 0, value: d.rate_limit },
        { name: 'key_store_regions', label: 'Key store regions (PREFIX=REGION)', help: 'The AWS region of each key store, e.g. example/keystore=us-east-1 (/ for the empty prefix); requests signed for another region are refused. A key store left out takes any region.', kind: 'list', sendEmpty: true, value: regionPairs(c), pattern: /^[^=]*=[a-z0-9-]+$/, patternMsg: 'PREFIX=REGION, e.g. example/keystore=us-east-1.' },
      ],
      onSubmit: async (v) => {
        // Removing a key store revokes its credentials: AWS KMS is locked
        // out of it at once. Ask before that.
        const kept = new Set(v.uri_path_prefixes.map((x) => x.replace(/^\/$/, '')));
        const removed = ((c && c.uri_path_prefixes) || []).filter((x) => !kept.has(x));
        if (removed.length) {
          const { info } = await api.listInfo(`${p}/credential`);
          const lost = Object.entries(info).filter(([, x]) => removed.includes(x.prefix || '')).map(([id]) => id);
          const names = removed.map((x) => x || '/').join(', ');
          if (lost.length && !await confirmTyped({ title: 'Remove key stores', name: names, action: 'Remove',
            message: `Removing ${names} revokes ${lost.length} SigV4 credential(s) (${lost.join(', ')}): AWS KMS requests to those key stores are refused at once.` })) {
            return 'Nothing was saved.';
          }
        }
        await api.write(`${p}/config`, v);
        flash('XKS configuration saved');
        reload();
        return null;
      },
    })));
}

async function credsView(p, once, reload) {
  const [{ keys, info }, c] = await Promise.all([api.listInfo(`${p}/credential`), readConfig(p)]);
  const prefixes = (c && c.uri_path_prefixes) || [];
  const rows = keys.map((k) => ({ id: k, ...(info[k] || {}) }));
  const out = h('div', { class: 'form-result' });
  return h('div', null,
    table([
      { label: 'Access key id', render: (r) => h('code', null, r.id) },
      { label: 'Key store', render: (r) => h('code', null, r.prefix || '(empty)') },
      { label: 'URI path', render: (r) => h('code', null, r.uri_path || '') },
      { label: 'Created', render: (r) => fmtTime(r.created_at) },
      { label: '', cls: 'right', render: (r) => button('Revoke', async (ev) => {
        if (!await confirmTyped({ title: 'Revoke SigV4 credential', name: r.id, action: 'Revoke', message: 'AWS KMS requests signed with it are refused at once.' })) return;
        await run(ev.target, out, async () => {
          await api.write(`${p}/credential/revoke`, { access_key_id: r.id });
          flash(`Revoked ${r.id}`);
          reload();
        });
      }, { kind: 'danger small' }) },
    ], rows, { empty: 'No credentials.', testid: 'xks-creds' }),
    out,
    prefixes.length ? form({
      testid: 'xks-cred-generate',
      submit: 'Generate credential',
      cls: 'inline',
      fields: [{ name: 'prefix', label: 'Key store', kind: 'select', value: prefixes[0], options: prefixes.map((x) => [x, x || '(empty)']) }],
      onSubmit: async (v) => {
        const d = await api.write(`${p}/credential/generate`, { prefix: v.prefix || '' });
        replace(once, secretOnce({
          title: `SigV4 credential ${d.access_key_id}`,
          warning: 'The secret access key is shown once; the appliance keeps it only sealed. Enter it in the AWS KMS console (or download the configuration file it accepts).',
          items: [['Access key id', d.access_key_id], ['Secret access key', d.secret_access_key], ['URI path', d.uri_path]],
          downloadLabel: 'Download AWS configuration (JSON)',
          filename: `xks-proxy-configuration-${d.access_key_id}.json`,
          content: JSON.stringify(d.xks_proxy_configuration, null, 2) + '\n',
          type: 'application/json',
        }));
        flash(`Generated credential ${d.access_key_id}`);
        reload();
        return null;
      },
    }) : h('p', { class: 'help' }, 'Configure a URI path prefix first.'));
}

async function keysView(p, reload) {
  const names = await api.list(`${p}/key`);
  const rows = await pool(names.slice(0, 200), 4, async (n) => ({ n, k: await settle(() => api.read(`${p}/key/${enc(n)}`)) }));
  const out = h('div', { class: 'form-result' });
  const usageForm = (r) => {
    const boxes = ['ENCRYPT', 'DECRYPT'].map((u) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: u, checked: (r.k.key_usage || []).includes(u) }), ' ', u.toLowerCase()));
    return h('span', { class: 'usage' }, boxes, button('Set', async (ev) => {
      const usage = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      const dropped = (r.k.key_usage || []).filter((u) => !usage.includes(u));
      if (dropped.length && !await confirmTyped({ title: `Change the usage of ${r.n}`, name: r.n, action: 'Change',
        message: `AWS KMS requests to ${dropped.join(' and ').toLowerCase()} with it are refused from now on.` })) return;
      await run(ev.target, out, async () => {
        await api.write(`${p}/key/${enc(r.n)}`, { key_usage: usage });
        flash(`Usage of ${r.n}: ${usage.join(', ') || 'none'}`);
        reload();
      });
    }, { kind: 'small' }));
  };
  return h('div', null,
    table([
      { label: 'Key (externalKeyId)', render: (r) => h('code', null, r.n) },
      { label: 'Status', render: (r) => r.k.error ? '–' : badge(r.k.key_status, r.k.enabled ? 'good' : 'muted') },
      { label: 'Usage', render: (r) => r.k.error ? '–' : usageForm(r) },
      { label: 'Created', render: (r) => r.k.error ? '–' : fmtTime(r.k.created_at) },
      { label: '', cls: 'right', render: (r) => r.k.error ? '' : h('span', { class: 'actions' },
        button(r.k.enabled ? 'Disable' : 'Enable', async (ev) => {
          if (r.k.enabled && !await confirmTyped({ title: `Disable XKS key ${r.n}`, name: r.n, action: 'Disable',
            message: 'AWS KMS requests that use it are refused until it is enabled again: whatever AWS encrypted under it cannot be decrypted meanwhile.' })) return;
          await run(ev.target, out, async () => {
            await api.write(`${p}/key/${enc(r.n)}`, { enabled: !r.k.enabled });
            flash(`${r.n} ${r.k.enabled ? 'disabled' : 'enabled'}`);
            reload();
          });
        }, { kind: 'small', testid: `xks-toggle-${r.n}` }),
        button('Delete', async (ev) => {
          if (!await confirmTyped({ title: `Delete XKS key ${r.n}`, name: r.n, message: 'The key is destroyed in the HSM: whatever AWS encrypted under it can no longer be decrypted.' })) return;
          await run(ev.target, out, async () => {
            await api.del(`${p}/key/${enc(r.n)}`);
            flash(`Deleted ${r.n}`);
            reload();
          });
        }, { kind: 'danger small' })) },
    ], rows, { empty: 'No keys yet.', testid: 'xks-keys' }),
    out,
    h('h3', null, 'Create a key'),
    form({
      testid: 'xks-key-create',
      submit: 'Create key',
      cls: 'inline',
      fields: [
        { name: 'name', label: 'Name (externalKeyId)', required: true, pattern: KEY_RE, patternMsg: '1 to 128 of A-Z, a-z, 0-9, ".", "_" and "-".' },
        { name: 'key_usage', label: 'Usage', kind: 'checks', value: ['ENCRYPT', 'DECRYPT'], options: [['ENCRYPT', 'encrypt'], ['DECRYPT', 'decrypt']], sendEmpty: true },
        { name: 'enabled', label: 'Enabled', kind: 'checkbox', value: true, sendEmpty: true },
      ],
      onSubmit: async (v) => {
        await api.write(`${p}/key/${enc(v.name)}`, { key_usage: v.key_usage, enabled: v.enabled });
        flash(`Created XKS key ${v.name}`);
        reload();
        return null;
      },
    }));
}
