// KMS providers of a keymgmt mount: create (credentials are write-only:
// sent once, sealed in the HSM, never read back), read, delete, and the
// keys distributed to each.
import { h, enc } from '../dom.js';
import * as api from '../api.js';
import { card, section, table, dl, button, form, confirmTyped, flash, run, pool, settle, pageHeader } from '../ui.js';
import { pickMount, crumbs, NAME_RE, NAME_MSG } from './common.js';

// REQUIRED are the credentials each provider needs.
const REQUIRED = { awskms: ['access_key', 'secret_key'], azurekeyvault: ['tenant_id', 'client_id', 'client_secret'], gcpckms: ['service_account_file'] };

const PROVIDERS = [['awskms', 'AWS KMS'], ['azurekeyvault', 'Azure Key Vault'], ['gcpckms', 'Google Cloud KMS']];

export async function render(params) {
  const pm = await pickMount('keymgmt', params.mount, (p) => `#/keys/${enc(p)}/kms`);
  if (pm.missing) return h('div', { class: 'page' }, pageHeader('KMS providers'), pm.missing);
  if (params.kms) return detail(pm, params.kms);
  const { p, m, tabs, mount } = pm;
  const listCard = section('Providers', () => providers(p, m));
  return h('div', { class: 'page kms' },
    crumbs(['Keys', `#/keys/${m}`], 'KMS providers'),
    pageHeader('KMS providers', h('span', { class: 'mount' }, h('code', null, mount.path + '/'))),
    tabs,
    listCard,
    card('Add a provider', providerForm(p, m, null, () => listCard.reload())));
}

async function providers(p, m) {
  const names = await api.list(`${p}/kms`);
  const rows = await pool(names, 4, async (name) => ({ name, d: await settle(() => api.read(`${p}/kms/${enc(name)}`)) }));
  return table([
    { label: 'Name', render: (r) => h('a', { href: `#/keys/${m}/kms/${enc(r.name)}` }, r.name) },
    { label: 'Provider', render: (r) => r.d.error ? '–' : r.d.provider },
    { label: 'Key collection', render: (r) => r.d.error ? '–' : h('code', null, r.d.key_collection) },
    { label: 'Endpoint', render: (r) => r.d.error ? '–' : r.d.endpoint || 'default' },
    { label: 'OAEP hash', render: (r) => r.d.error ? '–' : r.d.oaep_hash },
  ], rows, { empty: 'No KMS provider yet.' });
}

// providerForm creates a provider (name == null) or updates one; on an
// update, empty credentials keep the stored ones.
function providerForm(p, m, existing, done) {
  const isNew = !existing;
  const prov = (v) => (existing ? existing.provider : v.provider);
  const cred = (pv, name, label, opts = {}) => ({ name: 'cred_' + name, label, kind: 'password', required: isNew && !opts.optional,
    showIf: (v) => prov(v) === pv, help: opts.help });
  const fields = [
    isNew ? { name: 'name', label: 'Name', required: true, pattern: NAME_RE, patternMsg: NAME_MSG } : null,
    isNew ? { name: 'provider', label: 'Provider', kind: 'select', value: 'awskms', options: PROVIDERS } : null,
    { name: 'key_collection', label: 'Key collection', required: isNew, value: existing?.key_collection,
      help: 'AWS: the region (us-east-1). Azure: the vault name. GCP: projects/P/locations/L/keyRings/R.',
      check: (v, all) => prov(all) === 'gcpckms' && !/^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+$/.test(v) ? 'A GCP key ring: projects/P/locations/L/keyRings/R.'
        : prov(all) === 'awskms' && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(v) ? 'An AWS region such as us-east-1.' : null },
    cred('awskms', 'access_key', 'Access key id'),
    cred('awskms', 'secret_key', 'Secret access key'),
    cred('awskms', 'session_token', 'Session token', { optional: true }),
    cred('azurekeyvault', 'tenant_id', 'Tenant id'),
    cred('azurekeyvault', 'client_id', 'Client id'),
    cred('azurekeyvault', 'client_secret', 'Client secret'),
    { name: 'cred_environment', label: 'Azure environment', kind: 'select', value: '', showIf: (v) => prov(v) === 'azurekeyvault',
      options: [['', 'default (public cloud)'], ['AZUREPUBLICCLOUD', 'AZUREPUBLICCLOUD'], ['AZURECHINACLOUD', 'AZURECHINACLOUD'], ['AZUREUSGOVERNMENTCLOUD', 'AZUREUSGOVERNMENTCLOUD']] },
    { name: 'cred_service_account_file', label: 'Service account key (JSON)', kind: 'textarea', secret: true, required: isNew, showIf: (v) => prov(v) === 'gcpckms',
      check: (v) => { try { return JSON.parse(v).type === 'service_account' ? null : 'Not a service account key file.'; } catch { return 'Not JSON.'; } } },
    { name: 'endpoint', label: 'Endpoint', value: existing?.endpoint, help: 'Optional: a private endpoint of the cloud\u2019s API.',
      check: (v) => /^(https?:\/\/)?[A-Za-z0-9.-]+(:\d+)?(\/.*)?$/.test(v) ? null : 'A URL or host:port.' },
    { name: 'timeout', label: 'Timeout per cloud call (s)', kind: 'number', min: 1, max: 600, value: existing?.timeout || undefined },
    { name: 'oaep_hash', label: 'OAEP hash', kind: 'select', value: existing?.oaep_hash || 'sha256', options: [['sha256', 'sha256'], ['sha1', 'sha1']] },
  ].filter(Boolean);
  return form({
    testid: isNew ? 'kms-create' : 'kms-update',
    submit: isNew ? 'Add provider' : 'Update',
    reset: isNew,
    fields,
    onSubmit: async (v) => {
      const body = {};
      const credentials = {};
      for (const [k, x] of Object.entries(v)) {
        if (k.startsWith('cred_')) credentials[k.slice(5)] = x;
        else if (k !== 'name') body[k] = x;
      }
      if (Object.keys(credentials).length) {
        const missing = (REQUIRED[prov(v)] || []).filter((c) => !credentials[c]);
        if (missing.length) throw new Error(`Credentials are replaced as a whole: give ${missing.join(', ')} too.`);
        body.credentials = credentials;
      }
      const name = isNew ? v.name : existing.name;
      await api.write(`${p}/kms/${enc(name)}`, body);
      flash(isNew ? `Added KMS provider ${name}` : `Updated KMS provider ${name}`);
      done();
      return null;
    },
  });
}

async function detail({ p, m }, name) {
  const kp = `${p}/kms/${enc(name)}`;
  const out = h('div', { class: 'form-result' });
  const page = h('div', { class: 'page kms' },
    crumbs(['Keys', `#/keys/${m}`], ['KMS providers', `#/keys/${m}/kms`], name),
    pageHeader(name));
  const info = section('Provider', async () => {
    const d = await api.read(kp);
    return h('div', null,
      dl([['Provider', d.provider], ['Key collection', h('code', null, d.key_collection)], ['Endpoint', d.endpoint || 'default'],
        ['OAEP hash', d.oaep_hash], ['Timeout', d.timeout ? d.timeout + ' s' : 'default'], ['Credentials', 'sealed in the HSM; never shown']]),
      h('div', { class: 'actions' }, button('Delete provider', async (ev) => {
        if (!await confirmTyped({ title: `Delete KMS provider ${name}`, name, message: 'Refused while keys are distributed there.' })) return;
        await run(ev.target, out, async () => {
          await api.del(kp);
          flash(`Deleted KMS provider ${name}`);
          window.location.hash = `#/keys/${m}/kms`;
        });
      }, { kind: 'danger' })),
      out,
      h('details', null, h('summary', null, 'Update (leave every credential empty to keep the stored ones)'), providerForm(p, m, d, () => info.reload())));
  });
  page.append(info, section('Keys distributed here', async () => {
    const keys = await api.list(`${kp}/key`);
    return table([{ label: 'Key', render: (k) => h('a', { href: `#/keys/${m}/key/${enc(k)}` }, k) }], keys, { empty: 'No key is distributed to this provider.' });
  }));
  return page;
}
