// A KMIP role: one checkbox per operation (and all or none), its client
// certificate defaults, and its credentials: generate (the private key is
// offered once, as a PEM bundle download, and never kept), list, revoke.
import { h, replace, enc } from '../dom.js';
import * as api from '../api.js';
import { card, section, table, badge, button, form, confirmTyped, flash, run, download, secretOnce, pageHeader, load } from '../ui.js';
import { KMIP_OPERATIONS } from '../kmip_ops.js';
import { pickMount, crumbs } from './common.js';

// opsSummary says in a few words what a role grants.
export function opsSummary(d) {
  if (d.operation_all) return badge('all operations', 'warn');
  const ops = KMIP_OPERATIONS.filter((o) => d['operation_' + o]);
  if (!ops.length) return badge('none', 'muted');
  return ops.length > 6 ? `${ops.length} operations` : ops.join(', ');
}

// opsEditor is the grid of operation checkboxes with all and none; body()
// is the role write it stands for.
export function opsEditor(d) {
  const all = h('input', { type: 'checkbox', id: 'op-all', checked: !!d.operation_all, 'data-testid': 'op-all' });
  const boxes = KMIP_OPERATIONS.map((o) => h('input', { type: 'checkbox', id: 'op-' + o, value: o, checked: !!d['operation_' + o], 'data-testid': 'op-' + o }));
  const sync = () => { for (const b of boxes) b.disabled = all.checked; };
  all.addEventListener('change', sync);
  sync();
  const setAll = (v) => { all.checked = false; for (const b of boxes) b.checked = v; sync(); };
  const el = h('div', { class: 'ops-editor' },
    h('label', { class: 'check strong', for: 'op-all' }, all, ' All operations, including those added later'),
    h('div', { class: 'actions' },
      button('Select every operation', () => setAll(true), { kind: 'small', testid: 'ops-select-all' }),
      button('Select none', () => setAll(false), { kind: 'small', testid: 'ops-select-none' })),
    h('div', { class: 'ops-grid', role: 'group', 'aria-label': 'operations' },
      boxes.map((b, i) => h('label', { class: 'check', for: b.id }, b, ' ', KMIP_OPERATIONS[i]))));
  const body = () => {
    if (all.checked) return { operation_all: true };
    const on = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!on.length) return { operation_none: true };
    return Object.fromEntries(on.map((o) => ['operation_' + o, true]));
  };
  return { el, body };
}

export async function render(params) {
  const pm = await pickMount('kmip', params.mount, (p) => `#/kmip/${enc(p)}`);
  if (pm.missing) return h('div', { class: 'page' }, pm.missing);
  const { p, m } = pm;
  const { scope, role } = params;
  const rp = `${p}/scope/${enc(scope)}/role/${enc(role)}`;
  const once = h('div', { class: 'once-holder' });
  const credsCard = section('Client certificates', () => credentials(rp, scope, role, once, () => credsCard.reload()));
  const out = h('div', { class: 'form-result' });
  const roleCard = section('Operations', async () => {
    const d = await api.read(rp);
    const ed = opsEditor(d);
    const save = h('div', { class: 'form-result' });
    return h('div', null, ed.el,
      h('div', { class: 'actions' }, button('Save operations', async (ev) => {
        await run(ev.target, save, async () => {
          await api.write(rp, ed.body());
          flash(`Saved the operations of ${role}`);
          roleCard.reload();
          return null;
        });
      }, { kind: 'primary', testid: 'ops-save' })),
      save,
      h('h3', null, 'Client certificate defaults'),
      form({
        testid: 'role-cert',
        submit: 'Save defaults',
        cls: 'inline',
        fields: [
          { name: 'tls_client_key_type', label: 'Key type', kind: 'select', value: d.tls_client_key_type || '', options: [['', 'the mount\u2019s default'], ['ec', 'EC'], ['rsa', 'RSA']] },
          { name: 'tls_client_key_bits', label: 'Key bits', kind: 'number', value: d.tls_client_key_bits,
            check: (v, all) => all.tls_client_key_type === 'rsa' ? ([2048, 3072, 4096].includes(v) ? null : 'RSA: 2048, 3072 or 4096.') : all.tls_client_key_type === 'ec' ? ([224, 256, 384, 521].includes(v) ? null : 'EC: 224, 256, 384 or 521.') : null },
          { name: 'tls_client_ttl', label: 'Lifetime (s)', kind: 'number', min: 60, value: d.tls_client_ttl },
        ],
        onSubmit: async (v) => {
          if (v.tls_client_key_type && v.tls_client_key_bits === undefined) throw new Error('Give the key bits with the key type.');
          // Every field is sent: an empty one goes back to the mount's
          // default ("" and 0), which leaving it out would not do.
          const type = v.tls_client_key_type || '';
          await api.write(rp, { tls_client_key_type: type, tls_client_key_bits: type ? v.tls_client_key_bits : 0, tls_client_ttl: v.tls_client_ttl ?? 0 });
          flash(`Saved the certificate defaults of ${role}`);
          return null;
        },
      }));
  });
  return h('div', { class: 'page kmip-role' },
    crumbs(['KMIP', `#/kmip/${m}`], ['scope ' + scope, `#/kmip/${m}/scope/${enc(scope)}`], 'role ' + role),
    pageHeader(`Role ${role}`, h('span', { class: 'mount' }, 'scope ', h('code', null, scope)),
      button('Delete role', async (ev) => {
        if (!await confirmTyped({ title: `Delete role ${role}`, name: role, message: 'Its client certificates stop working.' })) return;
        await run(ev.target, out, async () => {
          await api.del(rp);
          flash(`Deleted role ${role}`);
          window.location.hash = `#/kmip/${m}/scope/${enc(scope)}`;
        });
      }, { kind: 'danger' })),
    out,
    roleCard,
    once,
    credsCard);
}

async function credentials(rp, scope, role, once, reload) {
  const serials = await api.list(`${rp}/credential`);
  const out = h('div', { class: 'form-result' });
  const gen = button('Generate a client certificate', async (ev) => {
    await run(ev.target, out, async () => {
      const c = await api.write(`${rp}/credential/generate`, { format: 'pem' });
      const bundle = [c.private_key, c.certificate, ...(c.ca_chain || [])].map((x) => x.trim() + '\n').join('');
      replace(once, secretOnce({
        title: `Client certificate ${c.serial_number}`,
        warning: 'The private key is not kept by the appliance: download the bundle now (key, certificate, CA). It is offered once.',
        items: [['Serial number', c.serial_number]],
        downloadLabel: 'Download PEM bundle',
        filename: `kmip-${scope}-${role}-${c.serial_number}.pem`,
        content: bundle,
        type: 'application/x-pem-file',
      }));
      flash(`Generated client certificate ${c.serial_number}`);
      reload();
    });
  }, { kind: 'primary', testid: 'cred-generate' });
  return h('div', null,
    h('div', { class: 'actions' }, gen), out,
    table([
      { label: 'Serial number', render: (s) => h('code', null, s) },
      { label: '', cls: 'right', render: (s) => h('span', { class: 'actions' },
        button('Certificate', async (ev) => {
          await run(ev.target, out, async () => {
            const c = await api.read(`${rp}/credential/lookup`, { serial_number: s });
            download(`kmip-${scope}-${role}-${s}.crt.pem`, c.certificate, 'application/x-pem-file');
          });
        }, { kind: 'small' }),
        button('Revoke', async (ev) => {
          if (!await confirmTyped({ title: 'Revoke client certificate', name: s, action: 'Revoke', message: 'The client is refused from its next connection.' })) return;
          await run(ev.target, out, async () => {
            await api.write(`${rp}/credential/revoke`, { serial_number: s });
            flash(`Revoked ${s}`);
            reload();
          });
        }, { kind: 'danger small', testid: 'cred-revoke' })) },
    ], serials, { empty: 'No client certificates.' }));
}
