// The Alerts view: firing alerts (with acknowledgement) and those resolved in
// the last 24 hours. Fields: docs/monitoring.md.
import { api, describeError } from './api.js';
import { h, timeEl, message } from './dom.js';
import { setStatus, showActionResult, confirmDialog, field } from './ui.js';

let loading = 0;

export function show() {
  load();
}

export function hide() {}

export function reset() {
  loading++;
  document.getElementById('alerts-firing').replaceChildren();
  document.getElementById('alerts-resolved').replaceChildren();
}

async function load() {
  const gen = ++loading;
  const firingBox = document.getElementById('alerts-firing');
  const resolvedBox = document.getElementById('alerts-resolved');
  try {
    const [firing, resolved] = await Promise.all([
      api('api/v1/alerts'),
      api('api/v1/alerts', { params: { state: 'resolved', since: '24h' } }),
    ]);
    if (gen !== loading) return;
    renderTable(firingBox, Array.isArray(firing) ? firing : [], true, 'alerts-firing-table', 'No alert is firing.');
    renderTable(resolvedBox, Array.isArray(resolved) ? resolved : [], false, 'alerts-resolved-table', 'No alert was resolved in the last 24 hours.');
    setStatus(`Alerts loaded ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (gen !== loading || err.status === 401) return;
    message(firingBox, describeError('Cannot load the alerts', err), 'error');
    setStatus(describeError('Cannot load the alerts', err), true);
  }
}

function renderTable(box, alerts, firing, id, empty) {
  if (!alerts.length) {
    box.replaceChildren(h('p', { class: 'help', id: `${id}-empty` }, empty));
    return;
  }
  const head = ['Severity', 'Kind', 'Where', 'Message', firing ? 'Since' : 'Resolved', 'Count', firing ? 'Acknowledged' : 'Since'];
  const rows = alerts.map((a) => {
    const sev = String(a.severity || '').replace(/[^a-z]/g, '');
    const where = [a.service, a.machine].filter(Boolean).join('@') || '—';
    let ackCell;
    if (firing) {
      const ack = a.acknowledged;
      const button = h('button', { type: 'button', class: 'small', 'aria-label': `Acknowledge alert ${a.id}: ${a.kind} ${where}` }, ack ? 'Extend ack' : 'Acknowledge');
      button.addEventListener('click', () => acknowledge(a, where));
      ackCell = h('td', {},
        ack ? h('div', { class: 'small-text' }, `by ${ack.by || '?'} until `, timeEl(ack.until), ack.note ? ` — ${ack.note}` : '') : null,
        button);
    } else {
      ackCell = h('td', {}, timeEl(a.since));
    }
    return h('tr', { dataset: { alertId: a.id ?? '', kind: a.kind || '', severity: sev }, class: [`severity-${sev}`, a.acknowledged ? 'acknowledged' : ''] },
      h('td', {}, h('span', { class: ['badge', `sev-${sev}`] }, a.severity || ''), a.level ? h('div', { class: 'small-text' }, `level ${a.level}`) : null),
      h('td', {}, a.kind || ''),
      h('td', {}, where),
      h('td', { class: 'message' }, a.message || ''),
      h('td', {}, timeEl(firing ? a.since : a.resolved)),
      h('td', {}, String(a.count ?? '')),
      ackCell);
  });
  box.replaceChildren(h('table', { class: 'list', id },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

async function acknowledge(alert, where) {
  const duration = h('input', { name: 'for', type: 'text', value: '1h', required: true, pattern: '[0-9]+[smhd]([0-9]+[smhd])*', spellcheck: 'false' });
  const note = h('textarea', { name: 'note', rows: 3, maxlength: 1000 });
  const values = await confirmDialog({
    title: 'Acknowledge an alert',
    text: `Acknowledge alert ${alert.id} (${alert.kind} on ${where})? Its notifications are held until the acknowledgement ends (POST api/v1/alerts/${alert.id}/ack); it is audited with your token.`,
    confirmLabel: 'Acknowledge',
    extra: [field('For (1s to 30d, e.g. 1h)', duration), field('Note', note)],
  });
  if (!values) return;
  try {
    const body = { for: values.for || '1h' };
    if (values.note) body.note = values.note;
    const r = await api(`api/v1/alerts/${encodeURIComponent(String(alert.id))}/ack`, { method: 'POST', body });
    const until = r && r.acknowledged && r.acknowledged.until ? ` until ${r.acknowledged.until}` : '';
    showActionResult(`Alert ${alert.id} acknowledged${until}.`);
  } catch (err) {
    if (err.status !== 401) showActionResult(describeError(`Acknowledging alert ${alert.id} failed`, err), true);
  }
  load();
}
