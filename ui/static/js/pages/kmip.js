// KMIP: a kmip mount's server configuration, its CA, scopes, and the roles
// of a scope.
import { h, replace, fmtTime, enc } from '../dom.js';
import * as api from '../api.js';
import { card, section, table, dl, badge, button, form, confirmTyped, flash, run, download, pool, settle, errorBox, pageHeader, load } from '../ui.js';
import { ApiError } from '../api.js';
import { pickMount, crumbs, NAME_RE, NAME_MSG } from './common.js';
import { opsEditor, opsSummary } from './kmip_role.js';

const HOSTPORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;

export async function render(params) {
  const pm = await pickMount('kmip', params.mount, (p) => `#/kmip/${enc(p)}`);
  if (pm.missing) return h('div', { class: 'page' }, pageHeader('KMIP'), pm.missing);
  if (params.scope) return scopePage(pm, params.scope);
  const { p, m, tabs, mount } = pm;
  const scopes = section('Scopes', () => scopesView(p, m, () => scopes.reload()));
  const ca = section('Certificate authority', () => caView(p, mount.path));
  const cfg = section('Server configuration', () => configView(p, () => { cfg.reload(); ca.reload(); }));
  return h('div', { class: 'page kmip' },
    pageHeader('KMIP', h('span', { class: 'mount' }, h('code', null, mount.path + '/'))),
    tabs,
    h('div', { class: 'grid-2' }, cfg, ca),
    scopes);
}

async function configView(p, reload) {
  let c = null;
  try {
    c = await api.read(`${p}/config`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  const facts = c ? dl([
    ['Listening', c.listening && c.listening.length ? h('span', null, badge('up', 'good'), ' ', c.listening.join(', ')) : badge('not listening', 'bad')],
    ['Listen addresses', (c.listen_addrs || []).join(', ')],
    ['Server names', [...(c.server_hostnames || []), ...(c.server_ips || [])].join(', ')],
    ['TLS', `${c.tls_min_version}+; CA key ${c.tls_ca_key_type}-${c.tls_ca_key_bits}`],
    ['Client certificates', `${c.default_tls_client_key_type}-${c.default_tls_client_key_bits}, valid ${Math.round(c.default_tls_client_ttl / 3600)} h`],
    ['Limits', `${c.max_connections} connections, ${c.max_message_bytes} bytes per message, idle ${c.idle_timeout} s`],
    ['Updated', fmtTime(c.updated_at)],
  ]) : h('p', { class: 'notice' }, 'Not configured yet: the first write creates the mount\u2019s CA in the HSM and starts the listener.');
  const d = c || { listen_addrs: ['127.0.0.1:5696'], server_hostnames: ['localhost'], server_ips: ['127.0.0.1', '::1'], tls_min_version: 'tls12', default_tls_client_key_type: 'ec', default_tls_client_key_bits: 256, default_tls_client_ttl: 336 * 3600 };
  return h('div', null, facts, h('details', { open: !c }, h('summary', null, c ? 'Change' : 'Configure'), form({
    testid: 'kmip-config',
    submit: 'Save configuration',
    fields: [
      { name: 'listen_addrs', label: 'Listen addresses', kind: 'list', required: true, value: d.listen_addrs, pattern: HOSTPORT, patternMsg: 'host:port.' },
      { name: 'server_hostnames', label: 'Server DNS names', kind: 'list', sendEmpty: true, value: d.server_hostnames, pattern: /^[A-Za-z0-9*.-]+$/, patternMsg: 'a DNS name.' },
      { name: 'server_ips', label: 'Server IP addresses', kind: 'list', sendEmpty: true, value: d.server_ips, pattern: /^[0-9a-fA-F:.]+$/, patternMsg: 'an IP address.',
        check: (v, all) => !v.length && !(all.server_hostnames || []).length ? 'Give DNS names or IP addresses for the server certificate.' : null },
      { name: 'tls_min_version', label: 'Minimum TLS version', kind: 'select', value: d.tls_min_version, options: [['tls12', 'TLS 1.2'], ['tls13', 'TLS 1.3']] },
      { name: 'default_tls_client_key_type', label: 'Client key type', kind: 'select', value: d.default_tls_client_key_type, options: [['ec', 'EC'], ['rsa', 'RSA']] },
      { name: 'default_tls_client_key_bits', label: 'Client key bits', kind: 'number', value: d.default_tls_client_key_bits,
        check: (v, all) => all.default_tls_client_key_type === 'rsa' ? ([2048, 3072, 4096].includes(v) ? null : 'RSA: 2048, 3072 or 4096.') : ([224, 256, 384, 521].includes(v) ? null : 'EC: 224, 256, 384 or 521.') },
      { name: 'default_tls_client_ttl', label: 'Client certificate lifetime (s)', kind: 'number', min: 60, value: d.default_tls_client_ttl },
    ],
    onSubmit: async (v) => {
      await api.write(`${p}/config`, v);
      flash('KMIP configuration saved; the listener restarted');
      reload();
      return null;
    },
  })));
}

async function caView(p, mountPath) {
  let pem;
  try {
    pem = (await api.read(`${p}/ca`)).ca_pem;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return h('p', { class: 'empty' }, 'No CA yet: it is created with the first configuration.');
    throw e;
  }
  return h('div', null,
    h('p', null, 'KMIP clients verify the server with this CA; the client certificates are issued by it.'),
    h('div', { class: 'actions' }, button('Download CA certificate', () => download(`kmip-${mountPath.replace(/\//g, '_')}-ca.pem`, pem, 'application/x-pem-file'), { kind: 'primary', testid: 'kmip-ca-download' })),
    h('details', null, h('summary', null, 'PEM'), h('pre', null, pem)));
}

async function scopesView(p, m, reload) {
  const names = await api.list(`${p}/scope`);
  const objects = await settle(() => api.read(`${p}/objects`));
  const rows = await pool(names, 3, async (sc) => ({ sc, roles: await settle(() => api.list(`${p}/scope/${enc(sc)}/role`)) }));
  const out = h('div', { class: 'form-result' });
  const force = h('input', { type: 'checkbox', id: 'scope-force' });
  return h('div', null,
    table([
      { label: 'Scope', render: (r) => h('a', { href: `#/kmip/${m}/scope/${enc(r.sc)}` }, r.sc) },
      { label: 'Roles', render: (r) => r.roles.error ? '–' : r.roles.length ? r.roles.join(', ') : 'none' },
      { label: 'Objects', cls: 'num', render: (r) => objects.error ? '–' : String(objects.scopes?.[r.sc] ?? 0) },
      { label: '', cls: 'right', render: (r) => button('Delete', async (ev) => {
        if (!await confirmTyped({ title: `Delete scope ${r.sc}`, name: r.sc,
          message: force.checked ? 'Force: the scope\u2019s KMIP objects are destroyed with its roles and credentials.' : 'Its roles and credentials go with it; a scope holding KMIP objects is refused unless forced.' })) return;
        await run(ev.target, out, async () => {
          await api.del(`${p}/scope/${enc(r.sc)}`, force.checked ? { force: 'true' } : undefined);
          flash(`Deleted scope ${r.sc}`);
          reload();
        });
      }, { kind: 'danger small' }) },
    ], rows, { empty: 'No scopes yet.' }),
    names.length ? h('label', { class: 'check', for: 'scope-force' }, force, ' force (destroy the objects of a scope that holds some)') : null,
    out,
    h('h3', null, 'Create a scope'),
    form({
      testid: 'scope-create',
      submit: 'Create scope',
      cls: 'inline',
      reset: true,
      fields: [{ name: 'scope', label: 'Name', required: true, pattern: NAME_RE, patternMsg: NAME_MSG }],
      onSubmit: async (v) => {
        await api.write(`${p}/scope/${enc(v.scope)}`);
        flash(`Created scope ${v.scope}`);
        reload();
        return null;
      },
    }));
}

async function scopePage({ p, m, mount }, scope) {
  const sp = `${p}/scope/${enc(scope)}`;
  const rolesCard = section('Roles', async () => {
    const roles = await api.list(`${sp}/role`);
    const rows = await pool(roles, 3, async (role) => ({
      role,
      d: await settle(() => api.read(`${sp}/role/${enc(role)}`)),
      creds: await settle(() => api.list(`${sp}/role/${enc(role)}/credential`)),
    }));
    return table([
      { label: 'Role', render: (r) => h('a', { href: `#/kmip/${m}/scope/${enc(scope)}/role/${enc(r.role)}` }, r.role) },
      { label: 'Operations', render: (r) => r.d.error ? '–' : opsSummary(r.d) },
      { label: 'Client certificates', cls: 'num', render: (r) => r.creds.error ? '–' : String(r.creds.length) },
    ], rows, { empty: 'No roles yet.' });
  });
  const editor = opsEditor({});
  return h('div', { class: 'page kmip' },
    crumbs(['KMIP', `#/kmip/${m}`], 'scope ' + scope),
    pageHeader(`Scope ${scope}`, h('span', { class: 'mount' }, h('code', null, mount.path + '/'))),
    rolesCard,
    card('Create a role', h('h3', null, 'Operations'), editor.el, form({
      testid: 'role-create',
      submit: 'Create role',
      fields: [{ name: 'role', label: 'Name', required: true, pattern: NAME_RE, patternMsg: NAME_MSG }],
      onSubmit: async (v) => {
        await api.write(`${sp}/role/${enc(v.role)}`, editor.body());
        flash(`Created role ${v.role}`);
        window.location.hash = `#/kmip/${m}/scope/${enc(scope)}/role/${enc(v.role)}`;
        return null;
      },
    })));
}
