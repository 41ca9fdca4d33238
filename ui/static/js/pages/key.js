// A key of a keymgmt mount: its versions and public keys, rotation,
// min_enabled_version, deletion, and its distribution to KMS providers.
import { h, replace, fmtTime, enc } from '../dom.js';
import * as api from '../api.js';
import { card, table, dl, badge, button, form, confirmTyped, errorBox, flash, run, download, pool, settle, load } from '../ui.js';
import { pickMount, crumbs } from './common.js';

export const PURPOSES = ['encrypt', 'decrypt', 'sign', 'verify', 'wrap', 'unwrap'];

export async function render(params) {
  const pm = await pickMount('keymgmt', params.mount, (p) => `#/keys/${enc(p)}`);
  if (pm.missing) return h('div', { class: 'page' }, pm.missing);
  const { p, m } = pm;
  const name = params.name;
  const kp = `${p}/key/${enc(name)}`;
  const body = h('div', { class: 'key-body' });
  const page = h('div', { class: 'page key' },
    crumbs(['Keys', `#/keys/${m}`], name),
    h('div', { class: 'page-head' }, h('h1', { 'data-testid': 'key-name' }, name),
      h('a', { class: 'btn', href: `#/audit?key=${enc(name)}` }, 'Audit events')),
    body);
  const draw = () => load(body, async () => {
    const k = await api.read(kp);
    const dist = await distributions(p, name);
    return [summary(k, kp, m, draw), versions(k, name), distributionCard(k, p, m, dist, draw)];
  });
  await draw();
  return page;
}

function summary(k, kp, m, draw) {
  const out = h('div', { class: 'form-result' });
  const rotate = button('Rotate', async (ev) => {
    await run(ev.target, out, async () => {
      const r = await api.write(`${kp}/rotate`);
      flash(`Rotated ${k.name}: version ${r.latest_version} is the latest`);
      draw();
    });
  }, { kind: 'primary', testid: 'rotate' });
  const del = button('Delete key', async (ev) => {
    if (!await confirmTyped({ title: `Delete key ${k.name}`, name: k.name, action: 'Delete',
      message: 'Every version is destroyed. A key still distributed to a KMS provider is refused: remove it there first.' })) return;
    await run(ev.target, out, async () => {
      await api.del(kp);
      flash(`Deleted key ${k.name}`);
      window.location.hash = `#/keys/${m}`;
    });
  }, { kind: 'danger', disabled: !k.deletion_allowed, title: k.deletion_allowed ? null : 'Allow deletion first', testid: 'delete-key' });
  return card('Key',
    dl([
      ['Type', k.type],
      ['Latest version', String(k.latest_version)],
      ['Min. enabled version', `${k.min_enabled_version}${k.min_enabled_version === 0 ? ' (all versions enabled)' : ''}`],
      ['Deletion', k.deletion_allowed ? badge('allowed', 'warn') : badge('protected', 'muted')],
    ]),
    h('div', { class: 'actions' }, rotate, del),
    out,
    h('div', { class: 'grid-2' },
      form({
        testid: 'min-version',
        submit: 'Set',
        cls: 'inline',
        fields: [{ name: 'min_enabled_version', label: 'Min. enabled version', kind: 'number', required: true, min: 0, max: k.latest_version,
          value: k.min_enabled_version, help: `0 enables every version; 1 to ${k.latest_version} disables the versions below it (in every KMS too).` }],
        onSubmit: async (v) => {
          await api.write(kp, { min_enabled_version: v.min_enabled_version });
          flash(`min_enabled_version of ${k.name} is ${v.min_enabled_version}`);
          draw();
          return null;
        },
      }),
      form({
        testid: 'deletion',
        submit: 'Save',
        cls: 'inline',
        fields: [{ name: 'deletion_allowed', label: 'Allow deletion', kind: 'checkbox', value: k.deletion_allowed, sendEmpty: true }],
        onSubmit: async (v) => {
          await api.write(kp, { deletion_allowed: !!v.deletion_allowed });
          flash(v.deletion_allowed ? `Deletion of ${k.name} allowed` : `${k.name} protected from deletion`);
          draw();
          return null;
        },
      })));
}

function versions(k, name) {
  const rows = Object.entries(k.versions || {}).map(([v, d]) => ({ v: Number(v), ...d })).sort((a, b) => b.v - a.v);
  return card('Versions', table([
    { label: 'Version', cls: 'num', render: (r) => String(r.v) },
    { label: 'Created', render: (r) => fmtTime(r.creation_time) },
    { label: 'State', render: (r) => r.v >= k.min_enabled_version ? badge('enabled', 'good') : badge('disabled', 'muted') },
    { label: 'Public key', render: (r) => r.public_key
      ? h('div', { class: 'pubkey' },
        h('details', null, h('summary', null, 'PEM'), h('pre', null, r.public_key)),
        button('Download', () => download(`${name}-v${r.v}.pub.pem`, r.public_key, 'application/x-pem-file'), { kind: 'small' }))
      : h('span', { class: 'muted' }, 'symmetric: none') },
  ], rows));
}

// distributions reads the key's state at every provider it was sent to.
async function distributions(p, name) {
  const r = await settle(() => api.list(`${p}/key/${enc(name)}/kms`));
  if (r.error) return { error: r.error };
  // A read that fails is kept apart (failed): a distribution's own "error"
  // field is its last failure, shown beside its state and its Resume.
  const list = await pool(r, 3, async (kms) => {
    try {
      return { kms, d: await api.read(`${p}/kms/${enc(kms)}/key/${enc(name)}`) };
    } catch (e) {
      return { kms, failed: e };
    }
  });
  return { list };
}

function statusBadge(s) {
  return badge(s, s === 'distributed' ? 'good' : s === 'distributing' ? 'warn' : 'muted');
}

function distributionCard(k, p, m, dist, draw) {
  const out = h('div', { class: 'form-result' });
  const blocks = dist.error ? [errorBox(dist.error)] : dist.list.map(({ kms, d, failed }) => {
    const remove = button(`Remove from ${kms}`, async (ev) => {
      if (!await confirmTyped({ title: `Remove ${k.name} from ${kms}`, name: kms, action: 'Remove',
        message: 'The copies in that cloud are scheduled for deletion (or destruction); the key stays here and at other providers.' })) return;
      await run(ev.target, out, async () => {
        await api.del(`${p}/kms/${enc(kms)}/key/${enc(k.name)}`);
        flash(`Removed ${k.name} from ${kms}`);
        draw();
      });
    }, { kind: 'danger small', testid: 'remove-dist' });
    if (failed) return h('div', { class: 'dist' }, h('h3', null, h('a', { href: `#/keys/${m}/kms/${enc(kms)}` }, kms)), errorBox(failed), h('div', { class: 'actions' }, remove));
    const rows = Object.entries(d.version_details || {}).map(([v, x]) => ({ v: Number(v), ...x })).sort((a, b) => b.v - a.v);
    const resume = button(d.status === 'distributed' ? 'Push again' : 'Resume', async (ev) => {
      await run(ev.target, out, async () => {
        await api.write(`${p}/kms/${enc(kms)}/key/${enc(k.name)}`, { purpose: d.purpose, protection: d.protection });
        flash(`Distribution of ${k.name} to ${kms} written again`);
        draw();
      });
    }, { kind: 'small' });
    return h('div', { class: 'dist', 'data-testid': 'dist-' + kms },
      h('h3', null, h('a', { href: `#/keys/${m}/kms/${enc(kms)}` }, kms), ' ', statusBadge(d.status)),
      dl([
        ['Purpose', (d.purpose || []).join(', ')],
        ['Protection', d.protection],
        d.error ? ['Last failure', h('span', { class: 'err-text' }, d.error)] : null,
      ]),
      table([
        { label: 'Version', cls: 'num', render: (r) => String(r.v) },
        { label: 'Provider id', render: (r) => h('code', { class: 'wrap' }, r.provider_id || '–') },
        { label: 'Imported', render: (r) => r.imported ? 'yes' : 'no' },
        { label: 'State there', render: (r) => r.enabled ? badge('enabled', 'good') : badge('disabled', 'muted') },
        { label: 'Wrapping', render: (r) => h('span', null, r.wrapping_scheme || '', r.wrapping_path ? h('small', { class: 'muted' }, ' ' + r.wrapping_path) : null) },
      ], rows, { empty: 'No version sent yet.' }),
      h('div', { class: 'actions' }, resume, remove));
  });
  return card('Distribution to KMS providers',
    blocks.length ? blocks : h('p', { class: 'empty' }, 'Not distributed to any KMS provider.'),
    out,
    h('h3', null, 'Distribute'),
    distributeForm(k, p, m, draw));
}

function distributeForm(k, p, m, draw) {
  const holder = h('div');
  load(holder, async () => {
    const providers = await api.list(`${p}/kms`);
    if (!providers.length) return h('p', { class: 'empty' }, 'No KMS provider yet: ', h('a', { href: `#/keys/${m}/kms` }, 'add one'), '.');
    const symmetric = k.type.startsWith('aes');
    const ec = k.type.startsWith('ecdsa');
    return form({
      testid: 'distribute',
      submit: 'Distribute',
      fields: [
        { name: 'kms', label: 'KMS provider', kind: 'select', value: providers[0], options: providers.map((x) => [x, x]) },
        { name: 'purpose', label: 'Purpose', kind: 'checks', required: true, requiredMsg: 'Pick at least one purpose.',
          value: symmetric ? ['encrypt', 'decrypt'] : ec ? ['sign', 'verify'] : ['encrypt', 'decrypt'], options: PURPOSES.map((x) => [x, x]),
          check: (v) => symmetric && v.some((x) => x === 'sign' || x === 'verify') ? 'An AES key cannot sign or verify.'
            : ec && v.some((x) => x !== 'sign' && x !== 'verify') ? 'An ECDSA key only signs and verifies.' : null },
        { name: 'protection', label: 'Protection', kind: 'select', value: 'hsm', options: [['hsm', 'hsm'], ['software', 'software (GCP only)']] },
      ],
      onSubmit: async (v) => {
        const d = await api.write(`${p}/kms/${enc(v.kms)}/key/${enc(k.name)}`, { purpose: v.purpose, protection: v.protection });
        flash(`${k.name} ${d.status === 'distributed' ? 'distributed to' : 'is being distributed to'} ${v.kms}`);
        draw();
        return null;
      },
    });
  });
  return holder;
}
