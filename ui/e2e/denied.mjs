// A token whose policy only lists keymgmt/key signs in and visits the
// pages: each shows the refusal (which capability on which path), never a
// blank page; a write it may not make shows the server's refusal.
import { open, close, failed, go, signIn, see, field, submit, check, log } from './lib.mjs';

const token = process.env.KEYHOLD_LIMITED_TOKEN;
check(token, 'KEYHOLD_LIMITED_TOKEN is set by the Go test');
const b = await open();
const { page } = b;

async function denied(where, pathText) {
  await see(page.locator('main'), 'Permission denied');
  await see(page.locator('main .error').filter({ hasText: pathText }), pathText);
  check((await page.locator('main h1').first().textContent()).trim() !== '', `${where}: the page has its heading`);
  log(where, 'shows the refusal for', pathText);
}

try {
  await signIn(page, token);
  await see(page.locator('#who'), 'keys-reader');
  await see(page.getByTestId('health'), 'healthy');
  await denied('dashboard', 'sys/mounts');
  await see(page.locator('main'), 'lacks the read capability on sys/metrics');
  await see(page.locator('main'), 'sys/audit');

  await go(page, '#/keys/keymgmt');
  await see(page.locator('main'), 'No keys yet.');
  await field(page, 'key-create', 'Name').fill('not-allowed');
  await submit(page, 'key-create');
  await see(page.getByTestId('key-create'), 'lacks the create/update capability on');
  await see(page.getByTestId('key-create'), 'permission denied');

  await go(page, '#/keys/keymgmt/kms');
  await denied('kms', 'keymgmt/kms');

  await go(page, '#/audit');
  await denied('audit', 'sys/audit');
  await see(page.locator('main'), 'also need sudo');

  await go(page, '#/kmip');
  await denied('kmip', 'sys/mounts');
} catch (e) {
  await failed(page, 'denied', e);
  throw e;
} finally {
  await close(b);
}
log('denied passed');
