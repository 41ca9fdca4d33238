// A secret pasted in a form leaves the page once the form is submitted,
// whether the server takes it or refuses it: the GCP service account key
// (a textarea) on the forms that add a KMS provider and update one.
import { open, close, failed, go, signIn, see, field, submit, flash, check, log } from './lib.mjs';

const sa = process.env.KEYHOLD_SA_JSON;
check(sa, 'KEYHOLD_SA_JSON is set by the Go test');
const b = await open();
const { page } = b;
const LABEL = 'Service account key (JSON)';
// A service account file the console takes and the server refuses (no
// client_email), with a private key in it.
const refused = JSON.stringify({ type: 'service_account', private_key: '-----BEGIN PRIVATE KEY-----\nrefused-key-material\n-----END PRIVATE KEY-----\n' });

async function noSecretOnPage(where) {
  for (const ta of await page.locator('textarea, input').all()) {
    const v = await ta.inputValue();
    check(!v.includes('PRIVATE KEY'), `${where}: a field still holds a secret: ${v.slice(0, 60)}`);
  }
}

try {
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');

  log('update refused by the server');
  await go(page, '#/keys/keymgmt/kms/gcp');
  await page.getByText('Update (leave every credential empty').click();
  await field(page, 'kms-update', LABEL).fill(refused);
  await submit(page, 'kms-update');
  await page.getByTestId('kms-update').locator('.error').first().waitFor();
  check(await field(page, 'kms-update', LABEL).inputValue() === '', 'the refused key file is still in the update form');
  await noSecretOnPage('refused update');

  log('update taken by the server');
  await field(page, 'kms-update', LABEL).fill(sa);
  await submit(page, 'kms-update');
  await flash(page, 'Updated KMS provider gcp');
  await noSecretOnPage('update');

  log('create refused by the server');
  await go(page, '#/keys/keymgmt/kms');
  await page.getByTestId('kms-create').getByLabel('Provider', { exact: true }).selectOption('gcpckms');
  await field(page, 'kms-create', 'Name').fill('gcp2');
  await field(page, 'kms-create', 'Key collection').fill('projects/p/locations/l/keyRings/r');
  await field(page, 'kms-create', LABEL).fill(refused);
  await submit(page, 'kms-create');
  await page.getByTestId('kms-create').locator('.error').first().waitFor();
  check(await field(page, 'kms-create', LABEL).inputValue() === '', 'the refused key file is still in the create form');
  check(await field(page, 'kms-create', 'Name').inputValue() === 'gcp2', 'the name is kept for a retry');
  await noSecretOnPage('refused create');

} catch (e) {
  await failed(page, 'secrets', e);
  throw e;
} finally {
  await close(b);
}
log('secrets passed');
