// Route parameters name objects: one the appliance could not hold ("." or
// "..", written plain or encoded, or a name outside its pattern) shows
// "Not found", never a page whose buttons act on another object. A path
// the browser would rewrite (a mount path ending in /..) is not sent.
import { open, close, failed, go, signIn, see, field, submit, check, log } from './lib.mjs';

const b = await open();
const { page } = b;
const sent = [];
page.on('request', (r) => { if (r.method() !== 'GET') sent.push(`${r.method()} ${r.url()}`); });

try {
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');

  // The Go test made scope prod with role app on the kmip mount.
  await go(page, '#/kmip/kmip/scope/prod/role/app');
  await see(page.locator('main h1'), 'app');
  check(await page.getByRole('button', { name: 'Delete role' }).count() === 1, 'the real role has its Delete button');

  for (const hash of [
    '#/kmip/kmip/scope/prod/role/..',
    '#/kmip/kmip/scope/prod/role/.',
    '#/kmip/kmip/scope/prod/role/%2e%2e',
    '#/kmip/kmip/scope/prod/role/%2E%2E',
    '#/kmip/kmip/scope/..',
    '#/kmip/kmip/scope/%2e%2e/role/app',
    '#/kmip/%2e%2e/scope/prod',
    '#/kmip/kmip%2F..',
    '#/keys/keymgmt/key/..',
    '#/keys/keymgmt/kms/%2e%2e',
    '#/keys/keymgmt/key/a%2Fb',
    '#/keys/keymgmt/key/%20x',
    '#/audit/..',
  ]) {
    await go(page, hash);
    const h1 = (await page.locator('main h1').first().textContent()).trim();
    check(h1 === 'Not found', `${hash} shows "${h1}", not "Not found"`);
    check(await page.locator('main button').count() === 0, `${hash} has buttons`);
    log(hash, 'is not found');
  }

  log('a mount path with a ".." segment is not sent');
  await go(page, '#/');
  await field(page, 'mount-form', 'Path').fill('kmip/..');
  await submit(page, 'mount-form');
  await see(page.getByTestId('mount-form'), 'refused to send a request for "sys/mounts/kmip/.."');
  check(sent.length === 0, 'requests were sent: ' + sent.join(', '));
} catch (e) {
  await failed(page, 'routes', e);
  throw e;
} finally {
  await close(b);
}
log('routes passed');
