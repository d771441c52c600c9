// Browser test of the clusterd dashboard: headless Debian chromium driven by
// playwright-core, against a real clusterd serving the dashboard.
//
//   CLUSTERD_URL=http://127.0.0.1:7480/ CLUSTERD_TOKEN=... SCREENSHOT_DIR=/tmp/shots \
//   NEVER_READY_SERVICE=... NEVER_READY_DEPENDENT=... KILL_SERVICE=... KILL_MACHINE=... \
//   AUDIT_SERVICE=... node tests/dashboard/dashboard.test.mjs
//
// Optional: CHROMIUM (default /usr/bin/chromium), STEP_TIMEOUT_MS (default
// 30000), REPAIR_TIMEOUT_MS (default 60000), OVERALL_TIMEOUT_MS (default
// 300000).
//
// Prints one line per step ("ok N name (ms)" or "FAIL N name: why"); a step
// that needs the login is skipped when the login failed. Exit code 0 when
// every step passed, 1 otherwise, 2 for a usage error.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const REQUIRED = ['CLUSTERD_URL', 'CLUSTERD_TOKEN', 'SCREENSHOT_DIR', 'NEVER_READY_SERVICE',
  'NEVER_READY_DEPENDENT', 'KILL_SERVICE', 'KILL_MACHINE', 'AUDIT_SERVICE'];
const missing = REQUIRED.filter((k) => !env[k]);
if (missing.length) {
  process.stderr.write(`dashboard.test: missing environment: ${missing.join(', ')}\n`);
  process.exit(2);
}
const BASE = env.CLUSTERD_URL.endsWith('/') ? env.CLUSTERD_URL : `${env.CLUSTERD_URL}/`;
const TOKEN = env.CLUSTERD_TOKEN;
const SHOTS = env.SCREENSHOT_DIR;
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = Number(env.STEP_TIMEOUT_MS || 30000);
const REPAIR_TIMEOUT = Number(env.REPAIR_TIMEOUT_MS || 60000);
const OVERALL_TIMEOUT = Number(env.OVERALL_TIMEOUT_MS || 300000);
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 800 };

fs.mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const results = [];
let browser = null;

class StepFailure extends Error {}
function fail(msg) {
  throw new StepFailure(msg);
}

// The API, asked directly by the test (the reference the page is compared to).
async function apiGet(p) {
  const res = await fetch(new URL(p, BASE), { headers: { Authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  if (!res.ok) fail(`GET ${p} answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

async function step(n, name, fn, { needs = [] } = {}) {
  const t0 = Date.now();
  const blocked = needs.filter((k) => !results.find((r) => r.n === k && r.ok));
  if (blocked.length) {
    results.push({ n, name, ok: false, skipped: true });
    console.log(`SKIP ${n} ${name}: needs step ${blocked.join(', ')}`);
    return;
  }
  try {
    await fn();
    results.push({ n, name, ok: true });
    console.log(`ok   ${n} ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    const msg = e instanceof StepFailure ? e.message : `${e && e.name}: ${e && e.message ? e.message.split('\n')[0] : e}`;
    results.push({ n, name, ok: false, msg });
    console.log(`FAIL ${n} ${name}: ${msg}`);
  }
}

// waitForFunction with a readable failure.
async function waitFor(page, what, fn, arg, timeout = STEP_TIMEOUT) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    if (e && e.name === 'TimeoutError') fail(`${what} (waited ${timeout} ms)`);
    throw e;
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: false });
}

async function openTab(page, view) {
  await page.click(`#tab-${view}`);
  await waitFor(page, `the ${view} tab did not open`, (v) => {
    const panel = document.getElementById(`view-${v}`);
    return panel && !panel.hidden && location.hash === `#${v}`;
  }, view);
}

// { "svc@machine": {state, ready, pid} } from the status document.
function instancesOf(status) {
  const out = {};
  for (const [svc, s] of Object.entries(status.services || {})) {
    for (const [m, i] of Object.entries(s.instances || {})) {
      out[`${svc}@${m}`] = { state: String(i.state || 'unknown'), ready: i.ready === true, pid: i.pid ?? null };
    }
  }
  return out;
}

function pageCells(page) {
  return page.$$eval('[data-instance]', (els) => Object.fromEntries(els.map((el) => [el.dataset.instance,
    { state: el.dataset.state, ready: el.dataset.ready === 'true', pid: el.dataset.pid || '' }])));
}

async function main() {
  // launch() gives chromium a fresh, temporary profile of its own (it
  // refuses --user-data-dir) and removes it on close.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  const consoleLines = [];
  const pageErrors = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageErrors.push(String(e && e.message)));

  await step(1, 'a wrong token shows a clear error and no data', async () => {
    const res = await page.goto(BASE, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    if (!res || !res.ok()) fail(`GET ${BASE} answered ${res ? res.status() : 'nothing'}: is the dashboard served?`);
    await page.waitForSelector('#token-input', { state: 'visible', timeout: STEP_TIMEOUT });
    await page.fill('#token-input', `wrong-${TOKEN.slice(0, 4)}-token`);
    await page.click('#login-form button[type=submit]');
    await waitFor(page, 'no visible "The token was refused by clusterd (401)" error after a wrong token', () => {
      const el = document.getElementById('login-error');
      return el && !el.hidden && el.offsetParent !== null && /The token was refused by clusterd \(401\)/.test(el.textContent);
    });
    const leaked = await page.evaluate(() => ({
      cells: document.querySelectorAll('[data-instance]').length,
      appVisible: !document.getElementById('app').hidden,
      stored: sessionStorage.length + localStorage.length,
    }));
    if (leaked.cells) fail(`${leaked.cells} [data-instance] cells are in the page after a refused token`);
    if (leaked.appVisible) fail('the app is shown after a refused token');
    if (leaked.stored) fail('a refused token was left in web storage');
    await shot(page, 'login-error.png');
  });

  await step(2, 'log in; the grid matches the API status document', async () => {
    await page.fill('#token-input', TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#grid [data-instance]', { timeout: STEP_TIMEOUT }).catch(() =>
      fail('no grid cell ([data-instance]) appeared after logging in with the right token'));
    // States can change between the API read and the page's next poll:
    // compare until they agree or the time is up.
    const deadline = Date.now() + STEP_TIMEOUT;
    let diff = [];
    for (;;) {
      const want = instancesOf(await apiGet('api/v1/status'));
      try {
        await page.waitForFunction((w) => {
          const cells = [...document.querySelectorAll('[data-instance]')];
          if (cells.length !== Object.keys(w).length) return false;
          return cells.every((el) => {
            const x = w[el.dataset.instance];
            return x && el.dataset.state === x.state && el.dataset.ready === String(x.ready);
          });
        }, want, { timeout: 5000, polling: 100 });
        break;
      } catch (e) {
        if (!e || e.name !== 'TimeoutError') throw e;
        const got = await pageCells(page);
        diff = Object.keys({ ...want, ...got }).sort()
          .filter((k) => !want[k] || !got[k] || want[k].state !== got[k].state || want[k].ready !== got[k].ready)
          .map((k) => `${k}: api ${want[k] ? `${want[k].state}/${want[k].ready ? 'ready' : 'not ready'}` : 'absent'}, page ${got[k] ? `${got[k].state}/${got[k].ready ? 'ready' : 'not ready'}` : 'absent'}`);
        if (Date.now() > deadline) fail(`the grid does not match the API: ${diff.join('; ')}`);
      }
    }
    const where = await page.evaluate((t) => ({
      inUrl: location.href.includes(t),
      inLocal: Object.keys(localStorage).some((k) => localStorage.getItem(k).includes(t)),
    }), TOKEN);
    if (where.inUrl) fail('the token is in the URL');
    if (where.inLocal) fail('the token is in localStorage');
    await shot(page, 'cluster.png');
  });

  await step(3, `kill ${env.KILL_SERVICE}@${env.KILL_MACHINE}: the cell goes down and comes back without a reload`, async () => {
    const key = `${env.KILL_SERVICE}@${env.KILL_MACHINE}`;
    const inst = instancesOf(await apiGet('api/v1/status'))[key];
    if (!inst) fail(`the status document has no instance ${key}`);
    if (inst.state !== 'running' || !inst.ready || !(inst.pid > 0)) {
      fail(`${key} is not running and ready with a pid before the kill (state ${inst.state}, ready ${inst.ready}, pid ${inst.pid})`);
    }
    const sel = `[data-instance=${JSON.stringify(key)}]`;
    await waitFor(page, `the cell ${key} does not show pid ${inst.pid} running and ready`, ({ s, pid }) => {
      const el = document.querySelector(s);
      return el && el.dataset.state === 'running' && el.dataset.ready === 'true' && el.dataset.pid === String(pid);
    }, { s: sel, pid: inst.pid });
    // Record every value the cell shows from now on, and mark this document:
    // the mark is gone if the page reloads.
    await page.evaluate(({ k }) => {
      window.__dashTestMark = 'same-page';
      window.__dashTestSeen = [];
      const record = () => {
        const el = document.querySelector(`[data-instance="${CSS.escape(k)}"]`);
        if (!el) return;
        const v = { state: el.dataset.state, ready: el.dataset.ready, pid: el.dataset.pid };
        const last = window.__dashTestSeen[window.__dashTestSeen.length - 1];
        if (!last || last.state !== v.state || last.ready !== v.ready || last.pid !== v.pid) window.__dashTestSeen.push(v);
      };
      record();
      new MutationObserver(record).observe(document.getElementById('grid-container'),
        { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-ready', 'data-pid'] });
    }, { k: key });
    try {
      process.kill(inst.pid, 'SIGKILL');
    } catch (e) {
      fail(`cannot kill pid ${inst.pid} of ${key}: ${e.message}`);
    }
    const back = await page.waitForFunction(({ s, pid }) => {
      const el = document.querySelector(s);
      return el && el.dataset.state === 'running' && el.dataset.ready === 'true' && el.dataset.pid !== String(pid) && el.dataset.pid !== '';
    }, { s: sel, pid: inst.pid }, { timeout: REPAIR_TIMEOUT, polling: 100 }).then(() => true, () => false);
    const seen = await page.evaluate(() => window.__dashTestSeen);
    const mark = await page.evaluate(() => window.__dashTestMark);
    if (mark !== 'same-page') fail('the page was reloaded during the repair');
    const trail = seen.map((v) => `${v.state}/${v.ready === 'true' ? 'ready' : 'not ready'}/pid ${v.pid}`).join(' -> ');
    const down = seen.some((v) => v.state !== 'running');
    if (!down) {
      fail(back
        ? `the cell never showed ${key} in a non-running state: clusterd's status document went from pid ${inst.pid} to a new running pid without reporting the instance down in between (seen: ${trail})`
        : `the cell never showed ${key} down within ${REPAIR_TIMEOUT} ms of the kill (seen: ${trail})`);
    }
    if (!back) fail(`${key} did not come back running and ready in the page within ${REPAIR_TIMEOUT} ms (seen: ${trail})`);
  }, { needs: [2] });

  await step(4, `graph: the edge ${env.NEVER_READY_DEPENDENT}->${env.NEVER_READY_SERVICE} is blocking`, async () => {
    // By keyboard: the Cluster tab is selected; ArrowRight opens the Graph.
    await page.focus('#tab-cluster');
    await page.keyboard.press('ArrowRight');
    await waitFor(page, 'ArrowRight on the Cluster tab did not open the Graph tab (focused, selected, #graph)', () =>
      document.activeElement && document.activeElement.id === 'tab-graph' &&
      document.getElementById('tab-graph').getAttribute('aria-selected') === 'true' &&
      !document.getElementById('view-graph').hidden && location.hash === '#graph');
    const edge = `${env.NEVER_READY_DEPENDENT}->${env.NEVER_READY_SERVICE}`;
    await waitFor(page, 'the graph view shows neither a graph nor an error', () =>
      document.querySelector('#graph-svg') || document.querySelector('#graph-container .error'));
    const err = await page.$eval('#graph-container', (el) => (el.querySelector('.error') ? el.textContent : ''));
    if (err) fail(`the graph view shows an error: ${err}`);
    const sel = `#graph-svg [data-edge=${JSON.stringify(edge)}]`;
    await page.waitForSelector(sel, { state: 'attached', timeout: STEP_TIMEOUT }).catch(() =>
      fail(`the graph has no edge [data-edge="${edge}"]`));
    await waitFor(page, `the edge ${edge} is not highlighted as blocking (class "blocking")`,
      (s) => document.querySelector(s)?.classList.contains('blocking'), sel);
    // The "why" of the blocked dependent.
    await page.click(`#graph-svg .node[data-service=${JSON.stringify(env.NEVER_READY_DEPENDENT)}]`);
    await waitFor(page, 'selecting the blocked service does not say why it is blocked', (s) => {
      const why = document.querySelector('#graph-detail .why');
      return why && why.textContent.includes(s);
    }, env.NEVER_READY_SERVICE);
    await shot(page, 'graph.png');
  }, { needs: [2] });

  await step(5, `audit: filtered by service ${env.AUDIT_SERVICE}; the chain verifies`, async () => {
    await openTab(page, 'audit');
    await waitFor(page, 'the audit view did not load', () =>
      !document.getElementById('audit-container').hasAttribute('aria-busy') &&
      (document.querySelector('#audit-table') || document.querySelector('#audit-container p')));
    await page.fill('#audit-service', env.AUDIT_SERVICE);
    await page.click('#audit-apply');
    await waitFor(page, `the audit table does not show only records of ${env.AUDIT_SERVICE}`, (svc) => {
      if (document.getElementById('audit-container').hasAttribute('aria-busy')) return false;
      const rows = [...document.querySelectorAll('#audit-table tbody tr')];
      return rows.length > 0 && rows.every((r) => r.dataset.service === svc);
    }, env.AUDIT_SERVICE);
    const paired = await page.$$eval('#audit-table tbody tr[data-phase=intent]', (rows) => rows.length);
    if (!paired) fail(`no intent/result pair of ${env.AUDIT_SERVICE} is shown`);
    await page.click('#audit-verify');
    await waitFor(page, '#verify-result did not answer', () => {
      const t = document.getElementById('verify-result').textContent;
      return t && !/^Verifying/.test(t);
    });
    const verdict = await page.textContent('#verify-result');
    if (!/^Chain verified: \d+ records/.test(verdict)) fail(`#verify-result says: ${verdict}`);
    await shot(page, 'audit.png');
  }, { needs: [2] });

  await step(6, 'revisions: at least 2; the newest compared with the previous shows a diff', async () => {
    await openTab(page, 'revisions');
    await waitFor(page, 'the revisions table did not appear', () =>
      document.querySelector('#revisions-table') || document.querySelector('#revisions-container .error'));
    const n = await page.$$eval('#revisions-table tbody tr', (r) => r.length).catch(() => 0);
    if (n < 2) {
      const text = await page.textContent('#revisions-container');
      fail(`${n} revision(s) shown, 2 needed: ${text.slice(0, 200)}`);
    }
    await page.click('#revisions-table tbody tr:first-child .compare-previous');
    await waitFor(page, 'no diff appeared after "Compare with previous"', () =>
      document.querySelector('#revision-diff #diff-title') || document.querySelector('#revision-diff .error'));
    const err = await page.$eval('#revision-diff', (el) => (el.querySelector('.error') ? el.textContent : ''));
    if (err) fail(`the diff view shows an error: ${err}`);
    const lines = await page.$$eval('#revision-diff .diff-file .line.add, #revision-diff .diff-file .line.del', (l) => l.length);
    if (!lines) fail('the diff between the newest and the previous revision has no added or removed line');
    await shot(page, 'revisions.png');
  }, { needs: [2] });

  await step(7, 'alerts view renders', async () => {
    await openTab(page, 'alerts');
    await waitFor(page, 'the alerts view showed neither the firing list nor an error', () =>
      document.querySelector('#alerts-firing-table, #alerts-firing-table-empty, #alerts-firing .error'));
    const err = await page.$eval('#view-alerts', (el) => [...el.querySelectorAll('.error')].map((e) => e.textContent).join('; '));
    if (err) fail(`the alerts view shows an error: ${err}`);
    await waitFor(page, 'the resolved alerts list did not render', () =>
      document.querySelector('#alerts-resolved-table, #alerts-resolved-table-empty'));
    await shot(page, 'alerts.png');
  }, { needs: [2] });

  await step(8, '"Sync now" through its confirmation dialog', async () => {
    await page.click('#sync-button');
    await waitFor(page, 'the confirmation dialog did not open', () => document.getElementById('confirm-dialog').open);
    const text = await page.textContent('#confirm-text');
    if (!/sync/i.test(text)) fail(`the dialog does not say what will happen: ${text}`);
    await page.click('#confirm-ok');
    await waitFor(page, 'the page does not show the answer "sync requested"', () => {
      const el = document.getElementById('action-result');
      return !el.hidden && /sync requested/i.test(el.textContent);
    });
  }, { needs: [2] });

  await step(9, 'phone (375x800): no horizontal overflow of the page', async () => {
    await page.setViewportSize(PHONE);
    await openTab(page, 'cluster');
    await page.waitForSelector('#grid [data-instance]', { timeout: STEP_TIMEOUT });
    const m = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      grid: document.getElementById('grid-container').scrollWidth,
      box: document.getElementById('grid-container').clientWidth,
      wide: [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 &&
          !e.closest('.grid-scroll, .table-scroll, .graph-scroll'))
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''} (right edge ${Math.round(e.getBoundingClientRect().right)} px)`),
    }));
    await shot(page, 'phone.png');
    await page.setViewportSize(DESKTOP);
    if (m.page > PHONE.width) fail(`the page is ${m.page} px wide at a 375 px viewport; too wide: ${m.wide.join(', ') || 'nothing outside a scroll box'}`);
  }, { needs: [2] });

  await step(10, 'no CSP violation, script error or token in the console', async () => {
    const csp = consoleLines.filter((l) => /Content Security Policy/i.test(l));
    if (csp.length) fail(`CSP violations: ${csp.slice(0, 3).join(' | ')}`);
    if (pageErrors.length) fail(`script errors: ${pageErrors.slice(0, 3).join(' | ')}`);
    if (consoleLines.some((l) => l.includes(TOKEN))) fail('the token appeared in the console');
  });
}

const watchdog = setTimeout(() => {
  console.log(`FAIL the whole run took longer than ${OVERALL_TIMEOUT} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT);

let code = 1;
try {
  await main();
  const failed = results.filter((r) => !r.ok);
  code = failed.length ? 1 : 0;
  console.log(failed.length
    ? `dashboard test FAILED: ${failed.map((r) => `step ${r.n}${r.skipped ? ' (skipped)' : ''}`).join(', ')} (${Date.now() - started} ms)`
    : `dashboard test passed: ${results.length} steps (${Date.now() - started} ms)`);
} catch (e) {
  console.log(`FAIL dashboard test could not run: ${e && e.message ? e.message.split('\n')[0] : e}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
