// Shared by the console's end-to-end scripts: a headless Debian Chromium
// driven by playwright-core, a page that fails the script on any JavaScript
// dialog (alert, confirm, prompt), uncaught error or CSP violation, and
// small helpers over Playwright's locators. The Go test (e2e_test.go)
// starts the appliance and passes its address and token in the environment.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const env = {
  addr: must('KEYHOLD_ADDR'),
  token: must('KEYHOLD_TOKEN'),
  shots: process.env.KEYHOLD_SCREENSHOTS || '',
  downloads: process.env.KEYHOLD_DOWNLOADS || '',
  chromium: process.env.KEYHOLD_CHROMIUM || '/usr/bin/chromium',
};

function must(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (the Go test sets it)`);
  return v;
}

export function log(...a) {
  console.log('[e2e]', ...a);
}

// open launches the browser and a page on the console; problems collects
// what must never happen (dialogs, page errors, CSP reports).
export async function open() {
  const browser = await chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 900 } });
  context.setDefaultTimeout(30000); // generous: CI shares two cores with the appliance and the browser
  const page = await context.newPage();
  const problems = [];
  page.on('dialog', async (d) => {
    problems.push(`a JavaScript ${d.type()} dialog opened: ${d.message()}`);
    await d.dismiss();
  });
  page.on('pageerror', (e) => problems.push(`uncaught page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused request logs "Failed to load resource"; the tests expect
    // some (403 for the token without rights, 404 for missing things).
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console error: ${m.text()}`);
  });
  return { browser, context, page, problems };
}

export async function close({ browser, problems }) {
  await browser.close();
  if (problems.length) throw new Error('problems on the page:\n  ' + problems.join('\n  '));
}

// failed records where a script failed: the page's address and a
// screenshot (failed-NAME.png), so a failure in CI can be read afterwards.
export async function failed(page, name, err) {
  log(`FAILED at ${page.url()}: ${err && err.message}`);
  if (!env.shots) return;
  try {
    mkdirSync(env.shots, { recursive: true });
    await page.screenshot({ path: path.join(env.shots, `failed-${name}.png`), fullPage: true });
    log('screenshot of the failure', path.join(env.shots, `failed-${name}.png`));
  } catch (e) {
    log('no screenshot of the failure:', e.message);
  }
}

export function url(hash = '') {
  return `${env.addr}/ui/${hash}`;
}

// go navigates to a console route and waits until the console has rendered
// that route (a hash change keeps the old page in place until the new one is
// ready, so its heading alone does not say which page is shown).
export async function go(page, hash) {
  await page.goto(url(hash));
  await page.waitForFunction(() => document.getElementById('main')?.dataset.shown === window.location.hash);
  await page.locator('main h1').first().waitFor();
}

export async function signIn(page, token = env.token) {
  await page.goto(url('#/signin'));
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

// see waits until the text is visible somewhere in the scope.
export async function see(scope, text, opts = {}) {
  await scope.getByText(text, { exact: false, ...opts }).filter({ visible: true }).first().waitFor({ state: 'visible' });
}

// field is the form control with the label inside the form of the test id.
export function field(page, testid, label) {
  return page.getByTestId(testid).getByLabel(label, { exact: true });
}

// submit clicks the form's submit button.
export async function submit(page, testid) {
  await page.getByTestId(testid).locator('button[type=submit]').click();
}

// confirm types the name into the confirmation dialog and accepts.
export async function confirm(page, name) {
  const dlg = page.locator('dialog.confirm');
  await dlg.waitFor();
  await dlg.getByTestId('confirm-input').fill(name);
  await dlg.getByTestId('confirm-ok').click();
  await dlg.waitFor({ state: 'detached' });
}

// shot saves a full-page PNG when a screenshot folder is given.
export async function shot(page, name) {
  if (!env.shots) return;
  mkdirSync(env.shots, { recursive: true });
  // The transient confirmations would cover the page in the picture.
  await page.evaluate(() => document.getElementById('flash')?.replaceChildren());
  await page.waitForTimeout(300);
  const file = path.join(env.shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  log('screenshot', file);
}

// flash waits for the transient confirmation message.
export async function flash(page, text) {
  await see(page.locator('#flash'), text);
}

// check fails the script with a message when cond is false.
export function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}
