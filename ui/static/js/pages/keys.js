// Key Management: the keys of a keymgmt mount and the form to create one.
import { h, enc } from '../dom.js';
import * as api from '../api.js';
import { card, section, table, badge, form, pool, settle, pageHeader } from '../ui.js';
import { pickMount, NAME_RE, NAME_MSG } from './common.js';

export const KEY_TYPES = [
  ['rsa-2048', 'RSA 2048'], ['rsa-3072', 'RSA 3072'], ['rsa-4096', 'RSA 4096'],
  ['ecdsa-p256', 'ECDSA P-256'], ['ecdsa-p384', 'ECDSA P-384'], ['ecdsa-p521', 'ECDSA P-521'],
  ['aes256-gcm96', 'AES-256 (GCM)'],
];

export async function render(params) {
  const pm = await pickMount('keymgmt', params.mount, (p) => `#/keys/${enc(p)}`);
  if (pm.missing) return h('div', { class: 'page' }, pageHeader('Keys'), pm.missing);
  const { p, m, tabs, mount } = pm;
  const keysCard = section('Keys', () => keysTable(p, m));
  return h('div', { class: 'page keys' },
    pageHeader('Keys', h('span', { class: 'mount' }, h('code', null, mount.path + '/')), h('a', { class: 'btn', href: `#/keys/${m}/kms` }, 'KMS providers')),
    tabs,
    card('Create a key', form({
      testid: 'key-create',
      submit: 'Create key',
      reset: true,
      fields: [
        { name: 'name', label: 'Name', required: true, pattern: NAME_RE, patternMsg: NAME_MSG },
        { name: 'type', label: 'Type', kind: 'select', value: 'rsa-2048', options: KEY_TYPES,
          help: 'Generated in the HSM; key pairs keep their public key readable.' },
      ],
      onSubmit: async (v) => {
        await api.write(`${p}/key/${enc(v.name)}`, { type: v.type });
        window.location.hash = `#/keys/${m}/key/${enc(v.name)}`;
        return null;
      },
    })),
    keysCard);
}

async function keysTable(p, m) {
  const names = await api.list(`${p}/key`);
  const rows = await pool(names.slice(0, 200), 4, async (name) => {
    const k = await settle(() => api.read(`${p}/key/${enc(name)}`));
    const kms = await settle(() => api.list(`${p}/key/${enc(name)}/kms`));
    return { name, k, kms };
  });
  return h('div', null,
    table([
      { label: 'Name', render: (r) => h('a', { href: `#/keys/${m}/key/${enc(r.name)}` }, r.name) },
      { label: 'Type', render: (r) => r.k.error ? '–' : r.k.type },
      { label: 'Latest version', cls: 'num', render: (r) => r.k.error ? '–' : String(r.k.latest_version) },
      { label: 'Min. enabled', cls: 'num', render: (r) => r.k.error ? '–' : String(r.k.min_enabled_version) },
      { label: 'Deletion', render: (r) => r.k.error ? '–' : r.k.deletion_allowed ? badge('allowed', 'warn') : badge('protected', 'muted') },
      { label: 'Distributed to', render: (r) => r.kms.error ? '–' : r.kms.length ? r.kms.join(', ') : 'nowhere' },
    ], rows, { empty: 'No keys yet.' }),
    names.length > 200 ? h('p', { class: 'help' }, `The first 200 of ${names.length} keys.`) : null);
}
