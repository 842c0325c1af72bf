// Drives Debian's chromium (headless, fresh profile) against a real dispatchd's /console/ and asserts what
// the pages show. Started by run-console-test, which provides the service, the fleet and the campaigns.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

const { values: a } = parseArgs({
  options: {
    chromium: { type: 'string' }, base: { type: 'string' }, token: { type: 'string' },
    fast: { type: 'string' }, slow: { type: 'string' }, devices: { type: 'string' }, out: { type: 'string' },
  },
});

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

// The HTTP contract, without the browser: CSP on the page, writes refused without the token.
const index = await fetch(a.base);
check(index.status === 200 && index.headers.get('content-type').startsWith('text/html'), 'index.html is served as text/html');
check(index.headers.get('content-security-policy') === "default-src 'self'", "Content-Security-Policy: default-src 'self'");
const js = await fetch(a.base + 'app.js');
check(js.headers.get('content-type').startsWith('text/javascript'), 'app.js is served as text/javascript');
const anon = await fetch(`${a.base}api/campaigns/${a.slow}/pause`, { method: 'POST' });
check(anon.status === 401, `POST pause without a token: ${anon.status} (want 401)`);
const wrong = await fetch(`${a.base}api/campaigns/${a.slow}/pause`, { method: 'POST', headers: { Authorization: 'Bearer nope' } });
check(wrong.status === 401, `POST pause with a wrong token: ${wrong.status} (want 401)`);

const profile = mkdtempSync(join(tmpdir(), 'dispatch-console-chromium-'));
const browser = await puppeteer.launch({
  executablePath: a.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  // Failed loads are checked by status below (the refused pause is meant to fail).
  page.on('console', m => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text()); });
  page.on('response', r => {
    const u = new URL(r.url());
    const expected = r.status() === 401 && u.pathname.endsWith('/pause');
    if (r.status() >= 400 && !expected && u.pathname !== '/favicon.ico') errors.push(`${r.status()} ${u.pathname}`);
  });

  // Fleet: the device count.
  await page.goto(a.base + '#/fleet', { waitUntil: 'load' });
  await page.waitForSelector('#device-count', { timeout: 10000 });
  const count = await page.$eval('#device-count', e => e.textContent);
  check(count === a.devices, `fleet page shows ${count} devices (want ${a.devices})`);
  const tags = await page.$$eval('#version-chart .group strong', es => es.map(e => e.textContent));
  check(tags.includes('a') && tags.includes('b'), `version chart has a bar per tag (${tags.join(', ')})`);
  await page.goto(a.base + '#/fleet?tag=a', { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('#device-count')?.textContent === '8', { timeout: 10000 })
    .then(() => check(true, 'filter by tag a shows 8 devices'), () => check(false, 'filter by tag a shows 8 devices'));

  // The slow campaign: a pause without the token is refused, with it it takes effect.
  await page.goto(a.base + '#/campaigns/' + encodeURIComponent(a.slow), { waitUntil: 'load' });
  await page.waitForFunction(() => document.querySelector('#campaign-state')?.textContent === 'running', { timeout: 15000 })
    .then(() => check(true, 'slow campaign shows running'), () => check(false, 'slow campaign shows running'));
  await page.click('#pause');
  await page.waitForFunction(() => document.querySelector('#action-result')?.textContent.includes('refused'), { timeout: 10000 });
  const refused = await page.$eval('#action-result', e => e.textContent);
  check(refused.includes('401'), `pause without the token is refused in the page: "${refused}"`);
  await page.type('#token', a.token);
  await page.click('#token-form button');
  await page.click('#pause');
  await page.waitForFunction(() => document.querySelector('#campaign-state')?.textContent === 'paused_by_user', { timeout: 10000 })
    .then(() => check(true, 'pause with the token: state paused_by_user'), () => check(false, 'pause with the token: state paused_by_user'));

  // The fast campaign: every bar reaches 100 %, updated by the page's once-a-second refresh.
  await page.goto(a.base + '#/campaigns/' + encodeURIComponent(a.fast), { waitUntil: 'load' });
  const done = await page.waitForFunction(() => {
    const bars = [...document.querySelectorAll('.group-bar')];
    return bars.length === 2 && bars.every(b => b.dataset.percent === '100') &&
      document.querySelector('#overall-bar')?.dataset.percent === '100';
  }, { timeout: 90000, polling: 500 }).then(() => true, () => false);
  const shown = await page.$$eval('.group-bar', bs => bs.map(b => b.dataset.percent));
  check(done, `fast campaign's group bars reach 100 % (${shown.join(', ')})`);
  const state = await page.$eval('#campaign-state', e => e.textContent);
  check(state === 'completed', `fast campaign state: ${state}`);
  await page.screenshot({ path: join(a.out, 'campaign.png'), fullPage: true });
  console.log(`screenshot: ${join(a.out, 'campaign.png')}`);

  for (const p of ['#/commands', '#/campaigns', '#/packages']) {
    await page.goto(a.base + p, { waitUntil: 'load' });
    await page.waitForSelector('main table, #error', { timeout: 10000 });
    check(!(await page.$('#error')), `page ${p} renders without an error`);
  }
  check(errors.length === 0, `no script errors or CSP violations in the page (${errors.join(' | ')})`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
if (failures) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all console checks passed');
