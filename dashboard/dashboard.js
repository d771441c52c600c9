// clusterd dashboard: login, tabs (the URL hash keeps the view), the global
// actions (sync, suspend/resume) and logout. No framework, no build step.
import { api, getToken, setToken, clearToken, setUnauthorizedHandler, describeError } from './api.js';
import { setStatus, showActionResult, confirmDialog } from './ui.js';
import * as cluster from './cluster.js';
import * as graph from './graph.js';
import * as revisions from './revisions.js';
import * as audit from './audit.js';
import * as alerts from './alerts.js';

const VIEWS = { cluster, graph, revisions, audit, alerts };
const ORDER = ['cluster', 'graph', 'revisions', 'audit', 'alerts'];
let current = '';
let signedIn = false;
let suspended = null;

const $ = (id) => document.getElementById(id);

function viewFromHash() {
  const v = location.hash.replace(/^#/, '');
  return ORDER.includes(v) ? v : 'cluster';
}

function selectView(name, { focus = false, updateHash = true } = {}) {
  if (!signedIn) return;
  if (updateHash && location.hash !== `#${name}`) {
    history.replaceState(null, '', `#${name}`);
  }
  if (current === name) return;
  if (current) VIEWS[current].hide();
  current = name;
  for (const v of ORDER) {
    const tab = $(`tab-${v}`);
    const on = v === name;
    tab.setAttribute('aria-selected', on ? 'true' : 'false');
    tab.tabIndex = on ? 0 : -1;
    $(`view-${v}`).hidden = !on;
  }
  if (focus) $(`tab-${name}`).focus();
  VIEWS[name].show();
}

function initTabs() {
  const list = document.querySelector('[role=tablist]');
  list.addEventListener('click', (ev) => {
    const tab = ev.target.closest('[role=tab]');
    if (tab) selectView(tab.dataset.view);
  });
  list.addEventListener('keydown', (ev) => {
    const i = ORDER.indexOf(current);
    let next = null;
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowDown') next = ORDER[(i + 1) % ORDER.length];
    else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowUp') next = ORDER[(i - 1 + ORDER.length) % ORDER.length];
    else if (ev.key === 'Home') next = ORDER[0];
    else if (ev.key === 'End') next = ORDER[ORDER.length - 1];
    if (next) {
      ev.preventDefault();
      selectView(next, { focus: true });
    }
  });
  window.addEventListener('hashchange', () => selectView(viewFromHash(), { updateHash: false }));
}

// Shows the app after a token was accepted.
function enterApp() {
  signedIn = true;
  $('login').hidden = true;
  $('login-error').hidden = true;
  $('app').hidden = false;
  $('actions').hidden = false;
  $('cluster-summary').hidden = false;
  current = '';
  selectView(viewFromHash(), { updateHash: true });
}

// Drops every piece of API data from the page and shows the login form.
function leaveApp(errorText) {
  signedIn = false;
  clearToken();
  if (current) VIEWS[current].hide();
  current = '';
  for (const v of ORDER) {
    VIEWS[v].reset();
    $(`view-${v}`).hidden = true;
  }
  $('app').hidden = true;
  $('actions').hidden = true;
  $('cluster-summary').hidden = true;
  $('cluster-summary').replaceChildren();
  $('suspend-state').textContent = '';
  suspended = null;
  showActionResult('');
  $('login').hidden = false;
  const err = $('login-error');
  err.textContent = errorText || '';
  err.hidden = !errorText;
  $('token-input').value = '';
  $('token-input').focus();
}

function refusedText(err) {
  return `The token was refused by clusterd (401): ${err.message}`;
}

async function signIn(token) {
  setToken(token);
  $('login-error').hidden = true;
  setStatus('Checking the token…');
  try {
    const health = await api('api/v1/health');
    updateSummary(health);
    setStatus('Signed in.');
    enterApp();
  } catch (err) {
    if (err.status === 401) return; // the unauthorized handler showed it
    clearToken();
    const text = describeError('Cannot sign in', err);
    $('login-error').textContent = text;
    $('login-error').hidden = false;
    setStatus(text, true);
  }
}

function updateSummary(health) {
  const st = health.status || 'unknown';
  const box = $('cluster-summary');
  box.replaceChildren();
  const badge = document.createElement('span');
  badge.className = `badge health-badge health-${st.replace(/[^a-z]/g, '')}`;
  badge.textContent = st;
  box.append(badge);
  if (typeof health.suspended === 'boolean') setSuspended(health.suspended);
}

function setSuspended(value) {
  suspended = value;
  $('suspend-state').textContent = value ? 'Reconciliation suspended' : 'Reconciliation active';
  $('suspend-state').classList.toggle('is-suspended', value);
  $('suspend-button').textContent = value ? 'Resume' : 'Suspend';
}

async function syncNow() {
  const ok = await confirmDialog({
    title: 'Sync now',
    text: 'Ask clusterd to fetch the branch and reconcile now (POST api/v1/sync). Nothing else changes; the result shows in the grid and the audit log.',
    confirmLabel: 'Sync now',
  });
  if (!ok) return;
  try {
    const r = await api('api/v1/sync', { method: 'POST' });
    showActionResult(`clusterd: ${r.status || 'ok'}${r.reason ? ` (${r.reason})` : ''}`);
    cluster.refreshSoon();
  } catch (err) {
    if (err.status !== 401) showActionResult(describeError('Sync failed', err), true);
  }
}

async function toggleSuspend() {
  const resume = suspended === true;
  const ok = await confirmDialog({
    title: resume ? 'Resume reconciliation' : 'Suspend reconciliation',
    text: resume
      ? 'Resume automatic reconciliation (POST api/v1/resume): clusterd will apply the desired state and repair drift again.'
      : 'Suspend automatic reconciliation (POST api/v1/suspend): clusterd keeps observing, probing and reporting, but changes nothing until resumed.',
    confirmLabel: resume ? 'Resume' : 'Suspend',
  });
  if (!ok) return;
  try {
    const r = await api(resume ? 'api/v1/resume' : 'api/v1/suspend', { method: 'POST' });
    setSuspended(!!r.suspended);
    showActionResult(`Reconciliation ${r.suspended ? 'suspended' : 'resumed'} (actor ${r.actor || '?'}).`);
    cluster.refreshSoon();
  } catch (err) {
    if (err.status !== 401) showActionResult(describeError(resume ? 'Resume failed' : 'Suspend failed', err), true);
  }
}

function main() {
  initTabs();
  revisions.init();
  audit.init();
  cluster.init({ healthListener: (health) => updateSummary(health) });
  setUnauthorizedHandler((err) => {
    leaveApp(refusedText(err));
    setStatus('The token was refused; sign in again.', true);
  });
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token-input').value.trim();
    if (token) signIn(token);
  });
  $('logout-button').addEventListener('click', () => {
    leaveApp('');
    setStatus('Signed out; the token was removed from this tab.');
  });
  $('sync-button').addEventListener('click', syncNow);
  $('suspend-button').addEventListener('click', toggleSuspend);
  for (const v of ORDER) $(`view-${v}`).hidden = true;
  if (getToken()) {
    signIn(getToken());
  } else {
    $('token-input').focus();
  }
}

main();
