// The Cluster view: overall health and the services x machines grid, polled
// every 2 s and updated in place (cells are kept, only their text and
// attributes change, so focus and scroll position survive an update).
import { api, describeError } from './api.js';
import { h, setText, setAttr, timeEl, formatDuration } from './dom.js';
import { setStatus, showActionResult, confirmDialog } from './ui.js';

const POLL_MS = 2000;

let timer = null;
let active = false;
let generation = 0;
let layoutKey = '';
const cells = new Map(); // "svc@machine" -> {td, state, ready, uptime, restarts, sync, reason}
let onHealth = () => {};

export function init({ healthListener }) {
  onHealth = healthListener;
}

export function show() {
  if (active) return;
  active = true;
  poll();
}

export function hide() {
  active = false;
  generation++;
  clearTimeout(timer);
  timer = null;
}

export function reset() {
  hide();
  layoutKey = '';
  cells.clear();
  document.getElementById('health').replaceChildren();
  document.getElementById('grid-container').replaceChildren();
}

// Fetches once now (used after actions), without disturbing the poll.
export function refreshSoon() {
  if (active) {
    clearTimeout(timer);
    timer = setTimeout(poll, 300);
  }
}

async function poll() {
  const gen = ++generation;
  try {
    const [health, status] = await Promise.all([api('api/v1/health'), api('api/v1/status')]);
    if (gen !== generation || !active) return;
    renderHealth(health, status);
    renderGrid(status);
    onHealth(health, status);
    setStatus(`Cluster updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (gen !== generation || !active) return;
    if (err.status === 401) return;
    setStatus(describeError('Cannot load the cluster status', err), true);
  }
  if (gen === generation && active) timer = setTimeout(poll, POLL_MS);
}

function renderHealth(health, status) {
  const box = document.getElementById('health');
  const inst = health.instances || {};
  const mach = health.machines || {};
  const down = health.critical_services_down || [];
  const st = health.status || status.overall_status || 'unknown';
  const items = [
    h('div', { class: ['health-status', `health-${st}`], id: 'overall-status', dataset: { status: st } },
      h('span', { class: 'label' }, 'Overall'), h('strong', {}, st)),
    stat('Machines reachable', `${mach.reachable ?? '?'} / ${mach.total ?? '?'}`),
    stat('Running', `${inst.running ?? '?'} / ${inst.total ?? '?'}`),
    stat('Ready', `${inst.ready ?? '?'} / ${inst.total ?? '?'}`),
    stat('In sync', `${inst.in_sync ?? '?'} / ${inst.total ?? '?'}`),
    stat('Failed', `${inst.failed ?? 0}`),
    stat('Revision', (health.revision || status.revision || '').slice(0, 7) || '—'),
    h('div', { class: 'stat' }, h('span', { class: 'label' }, 'Last check'), timeEl(health.last_check)),
  ];
  const children = [h('div', { class: 'health-row' }, items)];
  if (down.length) {
    children.push(h('p', { class: 'critical-down' }, 'Critical services down: ',
      down.map((d) => `${d.service} on ${(d.machines || []).join(', ')}`).join('; ')));
  }
  const reasons = health.reasons || [];
  if (reasons.length) {
    children.push(h('ul', { class: 'reasons' }, reasons.map((r) => h('li', {}, String(r)))));
  }
  box.replaceChildren(...children);
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('span', { class: 'label' }, label), h('strong', {}, value));
}

function renderGrid(status) {
  const services = Object.keys(status.services || {}).sort();
  const machineSet = new Set(Object.keys(status.machines || {}));
  for (const s of services) {
    for (const m of Object.keys(status.services[s].instances || {})) machineSet.add(m);
  }
  const machines = [...machineSet].sort();
  const key = JSON.stringify([services, machines,
    services.map((s) => Object.keys(status.services[s].instances || {}).sort()),
    services.map((s) => !!status.services[s].critical)]);
  if (key !== layoutKey) {
    buildGrid(services, machines, status);
    layoutKey = key;
  }
  const now = Date.now() / 1000;
  for (const m of machines) {
    const th = document.querySelector(`th[data-machine-col="${CSS.escape(m)}"]`);
    if (th) {
      const reachable = status.machines?.[m]?.reachable;
      th.classList.toggle('unreachable', reachable === false);
      setAttr(th, 'title', reachable === false ? `${m}: unreachable ${status.machines[m].error || ''}` : `${m}: reachable`);
    }
  }
  for (const s of services) {
    for (const [m, inst] of Object.entries(status.services[s].instances || {})) {
      const c = cells.get(`${s}@${m}`);
      if (c) updateCell(c, inst, now);
    }
  }
}

function buildGrid(services, machines, status) {
  const container = document.getElementById('grid-container');
  const hadFocus = document.activeElement && container.contains(document.activeElement)
    ? document.activeElement.closest('[data-instance]')?.dataset.instance : null;
  cells.clear();
  const colgroup = h('colgroup', {}, h('col', { class: 'col-service' }),
    machines.map(() => h('col', { class: 'col-machine' })));
  const head = h('thead', {}, h('tr', {},
    h('th', { scope: 'col' }, 'Service'),
    machines.map((m) => h('th', { scope: 'col', dataset: { machineCol: m } }, m))));
  const body = h('tbody');
  for (const s of services) {
    const svc = status.services[s];
    const row = h('tr', { class: svc.critical ? 'critical' : '', dataset: { service: s } },
      h('th', { scope: 'row' }, h('span', { class: 'svc-name' }, s),
        svc.critical ? h('span', { class: 'badge critical-badge', title: 'critical service' }, 'critical') : null));
    for (const m of machines) {
      const inst = (svc.instances || {})[m];
      if (!inst) {
        row.append(h('td', { class: 'empty' }, h('span', { class: 'visually-hidden' }, 'not placed here')));
        continue;
      }
      row.append(makeCell(s, m));
    }
    body.append(row);
  }
  const table = h('table', { class: 'grid', id: 'grid' },
    h('caption', { class: 'visually-hidden' }, 'Service instances by machine'), colgroup, head, body);
  container.replaceChildren(table);
  if (hadFocus) cells.get(hadFocus)?.restart.focus();
}

function makeCell(service, machine) {
  const state = h('span', { class: 'state' });
  const ready = h('span', { class: 'ready' });
  const uptime = h('span', { class: 'uptime' });
  const restarts = h('span', { class: 'restarts' });
  const sync = h('span', { class: 'sync' });
  const reason = h('span', { class: 'reason' });
  const restart = h('button', { type: 'button', class: 'small restart', 'aria-label': `Restart ${service} on ${machine}` }, 'Restart');
  restart.addEventListener('click', () => restartInstance(service, machine));
  const td = h('td', { class: 'cell', dataset: { instance: `${service}@${machine}`, state: 'unknown', ready: 'false' } },
    h('div', { class: 'cell-line' }, state, ready),
    h('div', { class: 'cell-line small-text' }, uptime, restarts),
    h('div', { class: 'cell-line small-text' }, sync),
    h('div', { class: 'cell-line small-text reason-line' }, reason),
    restart);
  const c = { td, state, ready, uptime, restarts, sync, reason, restart };
  cells.set(`${service}@${machine}`, c);
  return td;
}

function updateCell(c, inst, now) {
  const st = inst.state || 'unknown';
  const isReady = inst.ready === true;
  setAttr(c.td, 'data-state', st);
  setAttr(c.td, 'data-ready', isReady ? 'true' : 'false');
  setAttr(c.td, 'data-pid', inst.pid ?? '');
  setAttr(c.td, 'data-restarts', inst.restarts ?? 0);
  setAttr(c.td, 'data-in-sync', inst.in_sync ? 'true' : 'false');
  setAttr(c.td, 'class', `cell state-${st.replace(/[^a-z_-]/gi, '')}${isReady ? ' is-ready' : ' not-ready'}${inst.in_sync === false ? ' drift' : ''}`);
  setText(c.state, st);
  setText(c.ready, isReady ? 'ready' : 'not ready');
  const up = st === 'running' && inst.started_at ? formatDuration(now - inst.started_at) : '—';
  setText(c.uptime, `up ${up}`);
  setText(c.restarts, `${inst.restarts ?? 0} restart${inst.restarts === 1 ? '' : 's'}`);
  setText(c.sync, inst.in_sync ? 'in sync' : 'out of sync');
  // The reason repeats "in sync" when there is nothing else to say.
  setText(c.reason, inst.reason && inst.reason !== 'in sync' ? inst.reason : '');
  setAttr(c.reason, 'title', inst.reason || '');
  const probe = inst.last_probe ? `last probe: ${inst.last_probe.ok ? 'ok' : 'failed'} ${inst.last_probe.detail || ''} (${inst.last_probe.latency_ms ?? '?'} ms)` : 'no probe yet';
  setAttr(c.td, 'title', `desired ${inst.desired || '?'}; pid ${inst.pid ?? '—'}; ${probe}`);
}

async function restartInstance(service, machine) {
  const ok = await confirmDialog({
    title: 'Restart an instance',
    text: `Restart ${service} on ${machine}? clusterd stops it and starts it again (POST api/v1/restart), without changing the desired state. The action is audited with your token.`,
    confirmLabel: `Restart ${service}@${machine}`,
  });
  if (!ok) return;
  showActionResult(`Restarting ${service}@${machine}…`);
  try {
    const r = await api('api/v1/restart', { method: 'POST', body: { service, machine } });
    showActionResult(`Restart of ${r.service || service}@${r.machine || machine}: ${r.status || 'ok'} (actor ${r.actor || '?'})`);
  } catch (err) {
    if (err.status !== 401) showActionResult(describeError(`Restart of ${service}@${machine} failed`, err), true);
  }
  refreshSoon();
}
