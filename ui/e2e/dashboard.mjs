// The dashboard after the workflow (and after the Go test made a KMIP
// object with the client certificate the console issued, and keeps getting
// it): the counts of every mount, the charts drawn from the metrics with the
// KMIP traffic in them, the KMIP request in the audit view.
import { open, close, failed, go, signIn, see, shot, check, log } from './lib.mjs';

const b = await open();
const { page } = b;
try {
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');
  const counts = page.getByTestId('counts');
  const tile = (label) => counts.locator('.tile', { hasText: label }).locator('.tile-value');
  await see(counts, 'KMIP objects');
  // The workflow adds a second SigV4 credential (for the empty prefix).
  for (const [label, want] of [['keys', '1'], ['KMS providers', '1'], ['KMIP objects', '1'], ['scopes', '1'], ['roles', '1'],
    ['client certificates', '1'], ['XKS keys', '1'], ['SigV4 credentials', '2']]) {
    const got = (await tile(label).first().textContent()).trim();
    check(got === want, `${label}: ${got}, want ${want}`);
  }
  await page.waitForTimeout(6500); // three readings of the metrics
  await see(page.getByTestId('chart-ops'), 'kmip Create');
  check(await page.locator('[data-testid=chart-rate] polyline').count() >= 1, 'the rate chart has a line');
  const kmipRow = page.locator('table tr', { has: page.locator('td', { hasText: /^KMIP$/ }) });
  const since = Number((await kmipRow.locator('td').nth(1).textContent()).trim());
  check(since >= 5, 'KMIP requests since start (a Create and Gets every 200 ms): ' + since);
  await see(page.getByTestId('chart-ops'), 'kmip Get');
  check(await page.locator('[data-testid=chart-rate] .series.c-kmip polyline').count() === 1, 'the rate chart draws KMIP');
  const xksRow = page.locator('table tr', { has: page.locator('td', { hasText: /^XKS$/ }) });
  const xksSince = Number((await xksRow.locator('td').nth(1).textContent()).trim());
  check(xksSince >= 5, 'XKS requests since start (an Encrypt and health checks every 200 ms): ' + xksSince);
  check(await page.locator('[data-testid=chart-rate] .series.c-xks polyline').count() === 1, 'the rate chart draws XKS');
  check(await page.locator('[data-testid=chart-latency] .series.c-xks polyline').count() === 1, 'the latency chart draws XKS');
  await see(page.getByTestId('chart-errors'), 'InvalidStateException');
  await see(page.getByTestId('chart-ops'), 'xks health');
  await shot(page, 'dashboard');

  log('the XKS requests on the XKS page and in the audit view');
  await go(page, '#/xks/xks');
  const store = page.getByTestId('xks-health').locator('tr', { hasText: 'example/keystore' });
  await store.waitFor();
  check(Number((await store.locator('td').nth(1).textContent()).trim()) >= 5, 'XKS requests counted for the key store');
  const named = await store.locator('td').nth(3).textContent();
  check(/encrypt InvalidStateException ×1/i.test(named), 'the refused Encrypt is named: ' + named);
  await go(page, '#/audit/file?interface=xks&result=error');
  await see(page.getByTestId('audit-events'), 'InvalidStateException');
  await see(page.getByTestId('audit-events'), 'arn:aws:iam::111122223333:user/console');

  log('the KMIP request in the audit view');
  await go(page, '#/audit/file?interface=kmip&operation=Create');
  await see(page.getByTestId('audit-events'), 'finance/accounting');
  check(await page.getByTestId('audit-events').locator('tbody tr').count() === 1, 'one KMIP Create');
} catch (e) {
  await failed(page, 'dashboard', e);
  throw e;
} finally {
  await close(b);
}
log('dashboard passed');
