// Destructive actions after the dashboard run: each asks for the name to be
// typed (a wrong name keeps the button disabled; cancel does nothing), a
// form refuses an out-of-range value without sending it, then the key's
// distribution is removed, the key deleted, the KMIP client certificate
// revoked and the XKS key deleted. The Go test checks the fake cloud and
// the KMIP listener afterwards.
import { open, close, failed, go, signIn, see, field, submit, confirm, flash, check, log } from './lib.mjs';

const KEY = 'payments-key';
const KMS = 'aws-fake';
const b = await open();
const { page } = b;
const writes = [];
page.on('request', (r) => { if (r.method() !== 'GET') writes.push(`${r.method()} ${r.url()}`); });

try {
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');

  log('a value out of range is refused before sending');
  await go(page, `#/keys/keymgmt/key/${KEY}`);
  let n = writes.length;
  await field(page, 'min-version', 'Min. enabled version').fill('9');
  await submit(page, 'min-version');
  await see(page.getByTestId('min-version'), 'At most 2.');
  check(writes.length === n, 'the out-of-range value was sent');

  log('the confirmation needs the exact name');
  await page.getByTestId('remove-dist').click();
  const dlg = page.locator('dialog.confirm');
  await dlg.getByTestId('confirm-input').fill(KMS + 'x');
  check(await dlg.getByTestId('confirm-ok').isDisabled(), 'a wrong name enables the button');
  await dlg.getByTestId('confirm-input').fill(KMS.toUpperCase());
  check(await dlg.getByTestId('confirm-ok').isDisabled(), 'the name is compared exactly');
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  await dlg.waitFor({ state: 'detached' });
  check(writes.length === n, 'a cancelled confirmation sent a request');

  log('remove the distribution');
  await page.getByTestId('remove-dist').click();
  await confirm(page, KMS);
  await flash(page, `Removed ${KEY} from ${KMS}`);
  await see(page.locator('main'), 'Not distributed to any KMS provider.');

  log('allow deletion, delete the key');
  check(await page.getByTestId('delete-key').isDisabled(), 'delete is offered before deletion is allowed');
  await field(page, 'deletion', 'Allow deletion').check();
  await submit(page, 'deletion');
  await flash(page, `Deletion of ${KEY} allowed`);
  await page.getByTestId('delete-key').click();
  await confirm(page, KEY);
  await page.waitForURL(/#\/keys\/keymgmt$/);
  await see(page.locator('main'), 'No keys yet.');

  log('revoke the KMIP client certificate');
  await go(page, '#/kmip/kmip/scope/finance/role/accounting');
  const serial = (await page.locator('main table code').first().textContent()).trim();
  await page.getByTestId('cred-revoke').click();
  await confirm(page, serial);
  await flash(page, `Revoked ${serial}`);
  await see(page.locator('main'), 'No client certificates.');

  log('delete the XKS key');
  await go(page, '#/xks/xks');
  await page.getByTestId('xks-keys').getByRole('button', { name: 'Delete' }).click();
  await confirm(page, 'xks-key-1');
  await flash(page, 'Deleted xks-key-1');
  await see(page.getByTestId('xks-keys'), 'No keys yet.');

  log('a mount that holds keys is disabled only with a second confirmation');
  await go(page, '#/');
  await field(page, 'mount-form', 'Type').selectOption('keymgmt');
  await field(page, 'mount-form', 'Path').fill('scratch');
  await submit(page, 'mount-form');
  await flash(page, 'Enabled keymgmt at scratch/');
  await go(page, '#/keys/scratch');
  await field(page, 'key-create', 'Name').fill('doomed');
  await submit(page, 'key-create');
  await see(page.getByTestId('key-name'), 'doomed');
  await go(page, '#/');
  const row = page.locator('table tr', { has: page.locator('code', { hasText: /^scratch\/$/ }) });
  // The second dialog may open before the first is gone: each is found by
  // its title, not waited out as "the" dialog.
  const first = page.locator('dialog.confirm', { hasText: 'Disable scratch/' });
  const second = page.locator('dialog.confirm', { hasText: 'Destroy the keys of scratch/' });
  const accept = async (dlg) => {
    await dlg.waitFor();
    await dlg.getByTestId('confirm-input').fill('scratch');
    await dlg.getByTestId('confirm-ok').click();
  };
  await row.getByRole('button', { name: 'Disable' }).click();
  await accept(first);
  await second.waitFor();
  await second.getByTestId('confirm-cancel').click();
  await second.waitFor({ state: 'detached' });
  check(await row.count() === 1, 'a cancelled force left the mount');
  await row.getByRole('button', { name: 'Disable' }).click();
  await accept(first);
  await accept(second);
  await second.waitFor({ state: 'detached' });
  await flash(page, 'Disabled scratch/');
  await page.waitForFunction(() => ![...document.querySelectorAll('table code')].some((c) => c.textContent === 'scratch/'));
} catch (e) {
  await failed(page, 'destroy', e);
  throw e;
} finally {
  await close(b);
}
log('destroy passed');
