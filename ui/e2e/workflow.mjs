// The operator's workflow through the console, every step through its
// forms and buttons: sign in, enable an audit device and the three mount
// types, create a key, rotate it, add a KMS provider (the AWS fake the Go
// test runs) and distribute the key to it, configure KMIP, make a scope and
// a role and generate a client certificate (downloaded once), configure
// XKS, create a key there and disable it, find each action in the audit
// view, then sign out. Screenshots of the main pages are saved on the way.
// The Go test checks afterwards what the clouds and files received, uses the
// downloaded KMIP credential, and runs dashboard.mjs.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { open, close, failed, env, go, url, signIn, see, field, submit, confirm, shot, flash, check, log } from './lib.mjs';

const KEY = 'payments-key';
const KMS = 'aws-fake';
const fakeAWS = process.env.KEYHOLD_FAKE_AWS;
const auditFile = process.env.KEYHOLD_AUDIT_FILE;
const kmipAddr = process.env.KEYHOLD_KMIP_ADDR;
const xksAddr = process.env.KEYHOLD_XKS_ADDR;
check(fakeAWS && auditFile && kmipAddr && xksAddr, 'the Go test sets KEYHOLD_FAKE_AWS, KEYHOLD_AUDIT_FILE, KEYHOLD_KMIP_ADDR, KEYHOLD_XKS_ADDR');

const b = await open();
const { page } = b;
const requested = [];
page.on('request', (r) => requested.push(r.url()));

async function saveDownload(trigger, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), trigger()]);
  const file = path.join(env.downloads, name);
  await dl.saveAs(file);
  log('downloaded', dl.suggestedFilename(), '->', file);
  return dl.suggestedFilename();
}

async function enableMount(type, p) {
  await field(page, 'mount-form', 'Type').selectOption(type);
  await field(page, 'mount-form', 'Path').fill(p);
  await submit(page, 'mount-form');
  await flash(page, `Enabled ${type} at ${p}/`);
}

try {
  log('sign in');
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');
  await see(page.locator('#who'), 'root');

  log('audit device');
  await go(page, '#/audit');
  await field(page, 'audit-enable-form', 'File on the appliance').fill(auditFile);
  await submit(page, 'audit-enable-form');
  await see(page.getByTestId('verification'), 'Chain intact');

  log('mounts');
  await go(page, '#/');
  await enableMount('keymgmt', 'keymgmt');
  await enableMount('kmip', 'kmip');
  await enableMount('xks', 'xks');

  log('create a key, rotate it');
  await go(page, '#/keys/keymgmt');
  await field(page, 'key-create', 'Name').fill(KEY);
  await field(page, 'key-create', 'Type').selectOption('rsa-2048');
  await submit(page, 'key-create');
  await see(page.getByTestId('key-name'), KEY);
  await page.getByTestId('rotate').click();
  await flash(page, `Rotated ${KEY}: version 2 is the latest`);

  log('KMS provider (the AWS fake)');
  await go(page, '#/keys/keymgmt/kms');
  await field(page, 'kms-create', 'Name').fill(KMS);
  await field(page, 'kms-create', 'Provider').selectOption('awskms');
  await field(page, 'kms-create', 'Key collection').fill('us-east-1');
  await field(page, 'kms-create', 'Access key id').fill('AKIAEXAMPLECONSOLE');
  await field(page, 'kms-create', 'Secret access key').fill('console-secret-never-shown');
  await field(page, 'kms-create', 'Endpoint').fill(fakeAWS);
  await submit(page, 'kms-create');
  await flash(page, `Added KMS provider ${KMS}`);
  check(await field(page, 'kms-create', 'Secret access key').inputValue() === '', 'the secret stays in the form');

  log('distribute the key');
  await go(page, `#/keys/keymgmt/key/${KEY}`);
  await field(page, 'distribute', 'KMS provider').selectOption(KMS);
  await field(page, 'distribute', 'Protection').selectOption('hsm');
  await submit(page, 'distribute');
  await flash(page, `${KEY} distributed to ${KMS}`);
  const dist = page.getByTestId('dist-' + KMS);
  await see(dist, 'distributed');
  check(await dist.locator('tbody tr').count() === 2, 'both versions are at the provider');
  log('min_enabled_version 2');
  await field(page, 'min-version', 'Min. enabled version').fill('2');
  await submit(page, 'min-version');
  await flash(page, `min_enabled_version of ${KEY} is 2`);
  await see(page.getByTestId('dist-' + KMS).locator('tbody tr').last(), 'disabled');
  await shot(page, 'key-detail');

  log('a distribution whose last attempt failed shows the failure and offers Resume');
  // The distribution's record as a failed attempt leaves it (status
  // distributing, error set), made from the real answer.
  const distURL = `**/v1/keymgmt/kms/${KMS}/key/${KEY}`;
  await page.route(distURL, async (r) => {
    if (r.request().method() !== 'GET') return r.continue();
    const resp = await r.fetch();
    const body = await resp.json();
    body.data.status = 'distributing';
    body.data.error = 'aws-fake: no answer within the client timeout (staged)';
    await r.fulfill({ response: resp, json: body });
  });
  await go(page, '#/keys/keymgmt');
  await go(page, `#/keys/keymgmt/key/${KEY}`);
  const failedDist = page.getByTestId('dist-' + KMS);
  await see(failedDist, 'Last failure');
  await see(failedDist, 'no answer within the client timeout (staged)');
  check(await failedDist.getByRole('button', { name: 'Resume', exact: true }).count() === 1, 'a failed distribution offers Resume');
  await page.unroute(distURL);

  log('KMIP');
  await go(page, '#/kmip/kmip');
  await field(page, 'kmip-config', 'Listen addresses').fill(kmipAddr);
  await submit(page, 'kmip-config');
  await flash(page, 'KMIP configuration saved');
  await see(page.locator('main'), kmipAddr);
  const caName = await saveDownload(() => page.getByTestId('kmip-ca-download').click(), 'kmip-ca.pem');
  check(caName === 'kmip-kmip-ca.pem', 'CA file name ' + caName);
  await field(page, 'scope-create', 'Name').fill('finance');
  await submit(page, 'scope-create');
  await flash(page, 'Created scope finance');
  await page.getByRole('link', { name: 'finance', exact: true }).click();
  await see(page.locator('main h1'), 'Scope finance');
  await page.getByTestId('ops-select-all').click();
  await page.getByTestId('ops-select-none').click();
  for (const op of ['create', 'get', 'locate', 'activate', 'revoke', 'destroy', 'get_attributes']) await page.getByTestId('op-' + op).check();
  await field(page, 'role-create', 'Name').fill('accounting');
  await submit(page, 'role-create');
  await see(page.locator('main h1'), 'Role accounting');
  check(await page.getByTestId('op-locate').isChecked(), 'locate is granted');
  check(!(await page.getByTestId('op-encrypt').isChecked()), 'encrypt is not granted');
  await page.getByTestId('cred-generate').click();
  await see(page.locator('.secret-once'), 'Client certificate');
  const bundleName = await saveDownload(() => page.getByTestId('secret-download').click(), 'kmip-client.pem');
  check(/^kmip-finance-accounting-\d+\.pem$/.test(bundleName), 'bundle file name ' + bundleName);
  check(await page.getByTestId('secret-download').isDisabled(), 'the bundle is offered once');
  await see(page.locator('table'), (await page.getByTestId('secret-serial-number').textContent()).trim());
  await shot(page, 'kmip-role');
  await page.getByTestId('secret-close').click();
  check(await page.locator('.secret-once').count() === 0, 'the one-time panel is gone');
  log('a certificate is read with GET (a read capability is enough)');
  const lookup = page.waitForRequest((r) => r.url().includes('/credential/lookup'));
  const certName = await saveDownload(() => page.getByRole('button', { name: 'Certificate', exact: true }).click(), 'kmip-client.crt.pem');
  check((await lookup).method() === 'GET', 'credential lookup by ' + (await lookup).method());
  check(/\.crt\.pem$/.test(certName), 'certificate file name ' + certName);
  log('certificate defaults go back to the mount\u2019s when cleared');
  const roleWrite = () => page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/v1/kmip/scope/finance/role/accounting'));
  await field(page, 'role-cert', 'Key type').selectOption('rsa');
  await field(page, 'role-cert', 'Key bits').fill('2048');
  let w = roleWrite();
  await submit(page, 'role-cert');
  check((await w).postDataJSON().tls_client_key_bits === 2048, 'RSA 2048 sent');
  await field(page, 'role-cert', 'Key type').selectOption('');
  await field(page, 'role-cert', 'Key bits').fill('');
  w = roleWrite();
  await submit(page, 'role-cert');
  const cleared = (await w).postDataJSON();
  check(cleared.tls_client_key_type === '' && cleared.tls_client_key_bits === 0 && cleared.tls_client_ttl === 0, 'cleared defaults sent: ' + JSON.stringify(cleared));

  log('XKS');
  await go(page, '#/xks/xks');
  await field(page, 'xks-config', 'Listen addresses').fill(xksAddr);
  await field(page, 'xks-config', 'URI path prefixes (key stores)').fill('example/keystore');
  await submit(page, 'xks-config');
  await flash(page, 'XKS configuration saved');
  await see(page.getByTestId('xks-health'), xksAddr);
  await field(page, 'xks-key-create', 'Name (externalKeyId)').fill('xks-key-1');
  await submit(page, 'xks-key-create');
  await flash(page, 'Created XKS key xks-key-1');
  await see(page.getByTestId('xks-keys'), 'ENABLED', { exact: true });
  await page.getByTestId('xks-toggle-xks-key-1').click();
  await confirm(page, 'xks-key-1'); // disabling locks AWS out: it asks first
  await flash(page, 'xks-key-1 disabled');
  await see(page.getByTestId('xks-keys'), 'DISABLED', { exact: true });
  check((await page.getByTestId('xks-toggle-xks-key-1').textContent()) === 'Enable', 'the button now enables');
  await field(page, 'xks-cred-generate', 'Key store').selectOption('example/keystore');
  await submit(page, 'xks-cred-generate');
  await see(page.locator('.secret-once'), 'SigV4 credential');
  const secret = (await page.getByTestId('secret-secret-access-key').textContent()).trim();
  check(secret.length >= 40, 'a secret access key is shown');
  writeFileSync(path.join(env.downloads, 'xks-secret.txt'), secret);
  writeFileSync(path.join(env.downloads, 'xks-akid.txt'), (await page.getByTestId('secret-access-key-id').textContent()).trim());
  await shot(page, 'xks');
  await page.getByTestId('secret-close').click();
  check(!(await page.content()).includes(secret), 'the XKS secret left the page');

  log('XKS: the empty prefix survives a save; removing a key store with credentials asks first');
  const xksSave = () => page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/v1/xks/config'));
  const openConfig = () => page.locator('details:has([data-testid=xks-config]) > summary').click();
  await openConfig();
  await field(page, 'xks-config', 'URI path prefixes (key stores)').fill('/, example/keystore');
  let saved = xksSave();
  await submit(page, 'xks-config');
  await saved;
  await field(page, 'xks-cred-generate', 'Key store').selectOption('');
  await submit(page, 'xks-cred-generate');
  await see(page.locator('.secret-once'), 'SigV4 credential');
  await page.getByTestId('secret-close').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=xks-creds] tbody tr').length === 2);
  await openConfig();
  check((await field(page, 'xks-config', 'URI path prefixes (key stores)').inputValue()).split(/,\s*/).includes('/'), 'the empty prefix is shown as /');
  await field(page, 'xks-config', 'Rate limit (req/s per prefix, 0 = none)').fill('1000');
  saved = xksSave();
  await submit(page, 'xks-config');
  check((await saved).request().postDataJSON().uri_path_prefixes.includes('/'), 'a save of another field keeps the empty prefix');
  await page.waitForTimeout(300);
  check(await page.locator('[data-testid=xks-creds] tbody tr').count() === 2, 'both credentials survive the save');
  await openConfig();
  await field(page, 'xks-config', 'URI path prefixes (key stores)').fill('example/keystore');
  await submit(page, 'xks-config');
  const ask = page.locator('dialog.confirm');
  await ask.waitFor();
  await see(ask, 'revokes 1 SigV4 credential');
  await ask.getByTestId('confirm-cancel').click();
  await see(page.getByTestId('xks-config'), 'Nothing was saved.');
  check(await page.locator('[data-testid=xks-creds] tbody tr').count() === 2, 'nothing was revoked');

  log('a slow page does not replace the page navigated to meanwhile');
  // The audit page waits for sys/audit; hold that answer back, move on to the
  // keys page, and the audit page, when it arrives, must not take its place.
  let released;
  const held = new Promise((r) => { released = r; });
  await page.route('**/v1/sys/audit', async (r) => { await held; await r.continue(); });
  // The audit page must have asked before the keys page is opened (on a
  // busy machine it may not have yet, and then no answer ever comes).
  const asked = page.waitForRequest((r) => r.url().endsWith('/v1/sys/audit'));
  await page.goto(url('#/audit/file'));
  await asked;
  await go(page, '#/keys/keymgmt');
  const answered = page.waitForResponse((r) => r.url().endsWith('/v1/sys/audit'));
  released();
  await answered;
  await page.unroute('**/v1/sys/audit');
  await page.waitForTimeout(300);
  check(await page.getByRole('heading', { name: 'Audit' }).count() === 0, 'the audit page did not replace the keys page');
  await see(page.locator('main'), KEY);

  log('audit view');
  const expectEvent = async (filter, pathText) => {
    await go(page, `#/audit/file?${filter}`);
    await see(page.getByTestId('audit-events'), pathText);
  };
  await expectEvent(`key=${KEY}`, `keymgmt/key/${KEY}/rotate`);
  await see(page.getByTestId('audit-events'), `keymgmt/kms/${KMS}/key/${KEY}`);
  await expectEvent(`key=${KEY}&operation=create`, `keymgmt/key/${KEY}`);
  await expectEvent('key=accounting', 'kmip/scope/finance/role/accounting/credential/generate');
  await expectEvent('key=xks-key-1&operation=update', 'xks/key/xks-key-1');
  // The filter form itself.
  await go(page, '#/audit/file');
  await field(page, 'audit-filters', 'Key or object').fill(KMS);
  await field(page, 'audit-filters', 'Interface').selectOption('rest');
  await Promise.all([
    page.waitForResponse((r) => r.url().includes('/v1/sys/audit-log/file') && r.url().includes('key=aws-fake') && r.url().includes('interface=rest')),
    submit(page, 'audit-filters'),
  ]);
  await page.waitForFunction((kms) => {
    const rows = [...document.querySelectorAll('[data-testid=audit-events] tbody tr')];
    return rows.length >= 3 && rows.every((r) => r.textContent.includes(kms));
  }, KMS);
  await field(page, 'audit-filters', 'Result').selectOption('error');
  await field(page, 'audit-filters', 'Key or object').fill('');
  await submit(page, 'audit-filters');
  await page.waitForURL(/result=error/);
  await see(page.getByTestId('verification'), 'Chain intact');
  await go(page, '#/audit/file?limit=2');
  await see(page.getByTestId('verification'), 'Chain intact');
  for (const n of [2, 3]) {
    await page.getByTestId('audit-older').click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=audit-events] table').length === n, n);
  }
  check(await page.getByTestId('audit-older').count() === 1, 'older events can be asked for again');
  await go(page, '#/audit/file?limit=100');
  await see(page.getByTestId('verification'), 'Chain intact');
  await see(page.getByTestId('audit-events'), 'xks/credential/generate');
  await shot(page, 'audit');

  log('an older render of the same page does not replace the newer one');
  // Audit, keys, audit again: both audit renders wait for sys/audit. The
  // newer one gets its answer first and is shown; the older one's answer
  // then must not replace it.
  const heldAnswers = [];
  await page.route('**/v1/sys/audit', (r) => { heldAnswers.push(r); });
  const heldCount = async (n) => {
    for (let i = 0; i < 200 && heldAnswers.length < n; i++) await page.waitForTimeout(25);
    check(heldAnswers.length === n, `${n} sys/audit requests held`);
  };
  await page.goto(url('#/audit/file'));
  await heldCount(1);
  await go(page, '#/keys/keymgmt');
  await page.goto(url('#/audit/file'));
  await heldCount(2);
  await heldAnswers[1].continue();
  await page.waitForFunction(() => document.getElementById('main')?.dataset.shown === '#/audit/file');
  await page.evaluate(() => { window.shownPage = document.getElementById('main').firstElementChild; });
  const olderAnswered = page.waitForResponse((r) => r.url().endsWith('/v1/sys/audit'));
  await heldAnswers[0].continue();
  await olderAnswered;
  await page.unroute('**/v1/sys/audit');
  await page.waitForTimeout(300);
  check(await page.evaluate(() => document.getElementById('main').firstElementChild === window.shownPage), 'the older audit render did not replace the newer one');

  log('the token stays out of URLs and the page');
  check(!(await page.content()).includes(env.token), 'the token is not in the page');
  check(requested.every((u) => !u.includes(env.token)), 'no request URL carries the token');
  await page.getByTestId('signout').click();
  await see(page.locator('main'), 'Sign in to Keyhold');
  check(await page.evaluate(() => sessionStorage.length) === 0, 'sign-out empties sessionStorage');
  await page.goto(env.addr + '/ui/#/keys/keymgmt');
  await see(page.locator('main'), 'Sign in to Keyhold');
} catch (e) {
  await failed(page, 'workflow', e);
  throw e;
} finally {
  await close(b);
}
log('workflow passed');
