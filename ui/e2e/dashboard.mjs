// The dashboard after the workflow (and after the Go test made a KMIP
// object with the client certificate the console issued, and keeps getting
// it): the counts of every mount, the charts drawn from the metrics with the
// KMIP traffic in them, the KMIP request in the audit view.
import { open, close, go, signIn, see, shot, check, log } from './lib.mjs';

const b = await open();
const { page } = b;
try {
  await signIn(page);
  await see(page.getByTestId('health'), 'healthy');
  const counts = page.getByTestId('counts');
  const tile = (label) => counts.locator('.tile', { hasText: label }).locator('.tile-value');
  await see(counts, 'KMIP objects');
  for (const [label, want] of [['keys', '1'], ['KMS providers', '1'], ['KMIP objects', '1'], ['scopes', '1'], ['roles', '1'],
    ['client certificates', '1'], ['XKS keys', '1'], ['SigV4 credentials', '1']]) {
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
  await shot(page, 'dashboard');

  log('the KMIP request in the audit view');
  await go(page, '#/audit/file?interface=kmip&operation=Create');
  await see(page.getByTestId('audit-events'), 'finance/accounting');
  check(await page.getByTestId('audit-events').locator('tbody tr').count() === 1, 'one KMIP Create');
} finally {
  await close(b);
}
log('dashboard passed');
