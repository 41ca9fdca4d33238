// Markup in names and server messages shows as text: a key named
// <img src=x onerror=alert(1)> (refused by the form, not found through a
// route), a mount description, an audit event's path and a server's error
// message that quotes it. No dialog may open (lib.mjs fails the run on
// one), no <img src=x> may exist, and the page's Trusted Types policy must
// refuse HTML from a string.
import { open, close, failed, env, go, signIn, see, field, submit, flash, check, log, url } from './lib.mjs';

const XSS = '<img src=x onerror=alert(1)>';
const auditFile = process.env.KEYHOLD_AUDIT_FILE;
const b = await open();
const { page } = b;
const posts = [];
page.on('request', (r) => { if (r.method() !== 'GET') posts.push(r.url()); });

async function noMarkup(where) {
  check(await page.locator('img[src="x"]').count() === 0, `an <img src=x> element exists (${where})`);
}

try {
  const resp = await page.goto(url('#/signin'));
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'") && csp.includes("require-trusted-types-for 'script'"), 'CSP header: ' + csp);
  check(resp.headers()['x-content-type-options'] === 'nosniff' && resp.headers()['referrer-policy'] === 'no-referrer', 'nosniff and no-referrer');
  const sink = await page.evaluate(() => {
    try {
      document.body.insertAdjacentElement('beforeend', document.createElement('div')).innerHTML = '<b>x</b>';
      return 'allowed';
    } catch (e) {
      return e.name;
    }
  });
  check(sink === 'TypeError', 'Trusted Types refuse innerHTML from a string, got ' + sink);
  // Chromium reports the refusal on the console too: that one was ours.
  const ours = b.problems.findIndex((p) => p.includes("requires 'TrustedHTML' assignment"));
  check(ours >= 0, 'the refusal was reported');
  b.problems.splice(ours, 1);

  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');
  await go(page, '#/audit');
  await field(page, 'audit-enable-form', 'File on the appliance').fill(auditFile);
  await submit(page, 'audit-enable-form');
  await see(page.getByTestId('verification'), 'Chain intact');

  log('mount description');
  await go(page, '#/');
  await field(page, 'mount-form', 'Path').fill('keymgmt');
  await field(page, 'mount-form', 'Description').fill(XSS);
  await submit(page, 'mount-form');
  await flash(page, 'Enabled keymgmt at keymgmt/');
  await see(page.locator('main'), XSS);
  await noMarkup('dashboard');

  log('the create form refuses the name before sending it');
  await go(page, '#/keys/keymgmt');
  const before = posts.length;
  await field(page, 'key-create', 'Name').fill(XSS);
  await submit(page, 'key-create');
  await see(page.getByTestId('key-create'), `"${XSS}": a name is 1 to 128`);
  await see(page.getByTestId('key-create'), 'nothing was sent');
  check(posts.length === before, 'the form sent a request for an invalid name');
  await noMarkup('key form');

  log('a route with it is not found, and asks the server nothing');
  const gets = [];
  const onGet = (r) => { if (r.url().includes('img')) gets.push(r.url()); };
  page.on('request', onGet);
  await go(page, '#/keys/keymgmt/key/' + encodeURIComponent(XSS));
  page.off('request', onGet);
  check((await page.locator('main h1').first().textContent()).trim() === 'Not found', 'the route is not found');
  check(gets.length === 0, 'requests named it: ' + gets.join(', '));
  await noMarkup('key route');

  log('a server message that names it');
  await go(page, '#/keys/keymgmt/kms');
  await page.getByTestId('kms-create').getByLabel('Provider', { exact: true }).selectOption('azurekeyvault');
  await field(page, 'kms-create', 'Name').fill('azure');
  await field(page, 'kms-create', 'Key collection').fill(XSS);
  await field(page, 'kms-create', 'Tenant id').fill('t');
  await field(page, 'kms-create', 'Client id').fill('c');
  await field(page, 'kms-create', 'Client secret').fill('s');
  await submit(page, 'kms-create');
  const err = page.getByTestId('kms-create').locator('.error').first();
  await err.waitFor();
  const text = await err.textContent();
  check(text.includes(XSS), 'the server message names the key collection literally: ' + text);
  await noMarkup('server message');

  log('the server is asked for a key of that name');
  const read = await fetch(`${env.addr}/v1/keymgmt/key/${encodeURIComponent(XSS)}`, { headers: { 'X-Vault-Token': env.token } });
  check(read.status === 400 || read.status === 404, 'the read answers ' + read.status);

  log('the audit view');
  await page.goto(url('#/audit/file?key=' + encodeURIComponent(XSS)));
  await see(page.getByTestId('audit-events'), `keymgmt/key/${XSS}`);
  check(await page.getByTestId('audit-events').locator('tbody tr').count() >= 1, 'the refused read is in the audit view');
  await noMarkup('audit');
  const html = await page.content();
  check(html.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the markup is escaped text in the DOM');
} catch (e) {
  await failed(page, 'xss', e);
  throw e;
} finally {
  await close(b);
}
log('xss passed');
