// Drives Debian's chromium (headless, fresh profile) against a real dispatchd's /console/ and asserts what
// the pages show. Started by run-console-test, which provides the service, the fleet and the campaigns.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

const { values: a } = parseArgs({
  options: {
    chromium: { type: 'string' }, base: { type: 'string' }, token: { type: 'string' },
    fast: { type: 'string' }, slow: { type: 'string' }, devices: { type: 'string' }, out: { type: 'string' },
    'max-streams': { type: 'string' },
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

// The stream bound: http.console_max_streams streams open, the next one is refused 503 (then they are
// closed, and a new one is accepted once the service noticed: at its next write, within ~5 s).
const max = Number(a['max-streams']);
const streams = [];
for (let i = 0; i < max; i++) {
  const ac = new AbortController();
  const r = await fetch(`${a.base}api/campaigns/${a.slow}/events`, { signal: ac.signal });
  const first = new TextDecoder().decode((await r.body.getReader().read()).value);
  check(r.status === 200 && r.headers.get('content-type') === 'text/event-stream' && first.includes('event: campaign\ndata: {'),
    `event stream ${i + 1} of ${max}: ${r.status} ${r.headers.get('content-type')}, starts with the campaign document`);
  streams.push(ac);
}
const over = await fetch(`${a.base}api/campaigns/${a.slow}/events`);
check(over.status === 503, `stream ${max + 1} past http.console_max_streams: ${over.status} (want 503)`);
for (const ac of streams) ac.abort();
let freed = false;
for (let i = 0; i < 40 && !freed; i++) {
  await new Promise(r => setTimeout(r, 250));
  const ac = new AbortController();
  const r = await fetch(`${a.base}api/campaigns/${a.slow}/events`, { signal: ac.signal });
  freed = r.status === 200;
  ac.abort();
}
check(freed, 'closed streams free their places');

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
  // Every console API request, to show that the campaign page does not poll while its stream works.
  const requests = [];
  page.on('request', r => requests.push(new URL(r.url()).pathname));
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
    .then(() => check(true, 'pause with the token: state paused_by_user (brought by the stream)'),
      () => check(false, 'pause with the token: state paused_by_user (brought by the stream)'));

  // The fast campaign: every bar reaches 100 %, updated by the campaign's event stream.
  const fastPath = '/console/api/campaigns/' + a.fast;
  const before = requests.length;
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
  const seen = requests.slice(before);
  const polls = seen.filter(p => p === fastPath).length;
  const opened = seen.filter(p => p === fastPath + '/events').length;
  check(opened >= 1 && polls === 0, `the campaign page followed its event stream (${opened} stream request(s), ${polls} polling requests)`);
  const mode = await page.$eval('#live-mode', e => e.textContent);
  check(mode.includes('stream'), `the page says it is live on the stream: "${mode}"`);
  await page.screenshot({ path: join(a.out, 'campaign.png'), fullPage: true });
  console.log(`screenshot: ${join(a.out, 'campaign.png')}`);

  // Packages: upload a file through the page; its sha256 is computed in the browser.
  const file = join(a.out, 'upload.bin');
  const bytes = randomBytes(150 * 1024 + 17); // three 64 KiB chunks
  writeFileSync(file, bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await page.goto(a.base + '#/packages', { waitUntil: 'load' });
  await page.waitForSelector('#upload-form', { timeout: 10000 });
  await (await page.$('#upload-file')).uploadFile(file);
  await page.type('#upload-name', 'console-upload');
  await page.type('#upload-version', '3.1.4');
  await page.type('#upload-tags', 'fleet');
  const beforeUpload = requests.length;
  await page.click('#upload-form button');
  const uploaded = await page.waitForFunction(() => document.querySelector('#upload-status')?.textContent.startsWith('uploaded'),
    { timeout: 20000 }).then(() => true, () => false);
  check(uploaded, `the page uploads the file (${await page.$eval('#upload-status', e => e.textContent)})`);
  const chunks = requests.slice(beforeUpload).filter(p => p.endsWith('/upload')).length;
  check(chunks === 3, `the upload went in ${chunks} chunks (want 3 of at most 64 KiB)`);
  const row = await page.$$eval('main table tbody tr', rs => rs.map(r => [...r.children].map(c => c.textContent))
    .find(c => c[1] === 'console-upload'));
  check(row && row[3] === 'ready' && row[5] === sha256 && row[4] === String(bytes.length),
    `the package is listed ready with its size and the right sha256 (${row ? row.join(' | ') : 'no row'})`);
  const pj = await (await fetch(a.base + 'api/packages')).json();
  const listed = (pj.packages ?? pj).find(p => p.name === 'console-upload');
  check(listed?.state === 'ready' && listed?.sha256 === sha256, `packages/list: ${listed?.state} ${listed?.sha256}`);

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
