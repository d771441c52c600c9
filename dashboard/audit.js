// The Audit view: the audit log with filters, intent/result pairs shown on
// one row, paging with the cursor, and the hash chain check.
import { api, describeError, isMissingEndpoint } from './api.js';
import { h, timeEl, message } from './dom.js';
import { setStatus } from './ui.js';

const PAGE = 100;
let records = [];
let cursor = null;
let filters = {};
let loading = 0;
let loadedOnce = false;

export function init() {
  const form = document.getElementById('audit-filters');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    filters = readFilters();
    load(false);
  });
  document.getElementById('audit-more').addEventListener('click', () => load(true));
  document.getElementById('audit-verify').addEventListener('click', verify);
}

export function show() {
  if (!loadedOnce) {
    filters = readFilters();
    load(false);
  }
}

export function hide() {}

export function reset() {
  records = [];
  cursor = null;
  loadedOnce = false;
  loading++;
  document.getElementById('audit-container').replaceChildren();
  document.getElementById('verify-result').textContent = '';
  document.getElementById('audit-more').hidden = true;
}

function readFilters() {
  const get = (id) => document.getElementById(id).value.trim();
  return {
    service: get('audit-service'), machine: get('audit-machine'), action: get('audit-action'),
    result: get('audit-result'), since: get('audit-since'), until: get('audit-until'),
  };
}

async function load(more) {
  const gen = ++loading;
  const container = document.getElementById('audit-container');
  const moreButton = document.getElementById('audit-more');
  if (!more) {
    container.setAttribute('aria-busy', 'true');
  }
  moreButton.disabled = true;
  try {
    const params = { ...filters, limit: PAGE };
    if (more && cursor) params.cursor = cursor;
    const page = await api('api/v1/audit', { params });
    if (gen !== loading) return;
    const got = Array.isArray(page.records) ? page.records : [];
    records = more ? records.concat(got) : got;
    cursor = page.next_cursor || null;
    loadedOnce = true;
    render();
    setStatus(`Audit: ${records.length} record${records.length === 1 ? '' : 's'} loaded ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (gen !== loading || err.status === 401) return;
    const text = describeError('Cannot load the audit log', err);
    if (!more) message(container, text, 'error');
    setStatus(text, true);
  } finally {
    if (gen === loading) {
      container.removeAttribute('aria-busy');
      moreButton.disabled = false;
      moreButton.hidden = !cursor;
    }
  }
}

// Pairs each result record with its intent: by intent_seq when the record
// has it, else with the nearest earlier unpaired intent of the same
// service, machine and action. Returns display rows in the listed order.
export function pairRecords(list) {
  const bySeq = new Map(list.map((r) => [r.seq, r]));
  const resultOf = new Map(); // intent seq -> result record
  const paired = new Set(); // result seqs shown on their intent's row
  const ascending = [...list].sort((a, b) => a.seq - b.seq);
  const open = new Map(); // service|machine|action -> [intent records]
  for (const r of ascending) {
    const key = `${r.service}|${r.machine}|${r.action}`;
    if (r.phase === 'intent') {
      if (!open.has(key)) open.set(key, []);
      open.get(key).push(r);
    } else if (r.phase === 'result') {
      let intent = null;
      if (r.intent_seq !== undefined && r.intent_seq !== null) {
        intent = bySeq.get(r.intent_seq) || null;
      } else {
        const q = open.get(key);
        if (q && q.length) intent = q.pop();
      }
      if (intent && !resultOf.has(intent.seq)) {
        resultOf.set(intent.seq, r);
        paired.add(r.seq);
        const q = open.get(`${intent.service}|${intent.machine}|${intent.action}`);
        if (q) {
          const i = q.indexOf(intent);
          if (i >= 0) q.splice(i, 1);
        }
      }
    }
  }
  const rows = [];
  for (const r of list) {
    if (paired.has(r.seq)) continue;
    rows.push({ record: r, result: r.phase === 'intent' ? resultOf.get(r.seq) || null : null });
  }
  return rows;
}

function render() {
  const container = document.getElementById('audit-container');
  if (!records.length) {
    message(container, 'No audit record matches these filters.');
    return;
  }
  const rows = pairRecords(records).map(({ record: r, result }) => {
    const outcome = result || (r.phase === 'intent' ? null : r);
    const outcomeText = outcome ? String(outcome.result || '') : 'pending';
    const phase = r.phase === 'intent' ? (result ? 'intent → result' : 'intent (no result yet)') : (r.phase || '');
    const where = [r.service, r.machine].filter(Boolean).join('@');
    const detail = [r.detail, result && result.detail && result.detail !== r.detail ? result.detail : ''].filter(Boolean).join(' → ');
    const seqText = result ? `${r.seq} → ${result.seq}` : String(r.seq);
    return h('tr', {
      dataset: {
        seq: r.seq, service: r.service || '', machine: r.machine || '', action: r.action || '',
        phase: r.phase || '', result: outcomeText,
      },
      class: [`result-row-${outcomeText.replace(/[^a-z]/gi, '')}`],
    },
    h('td', {}, seqText),
    h('td', {}, timeEl(r.time), result ? h('div', { class: 'small-text' }, 'done ', timeEl(result.time)) : null),
    h('td', {}, h('strong', {}, r.action || ''), h('div', { class: 'small-text' }, phase)),
    h('td', {}, where || '—'),
    h('td', {}, h('span', { class: ['badge', `result-${outcomeText.replace(/[^a-z]/gi, '')}`] }, outcomeText),
      outcome && Number.isFinite(outcome.duration_ms) && outcome.duration_ms > 0
        ? h('div', { class: 'small-text' }, `${outcome.duration_ms} ms`) : null),
    h('td', {}, r.actor || '', h('div', { class: 'small-text' }, [r.trigger, r.revision].filter(Boolean).join(' · '))),
    h('td', { class: 'message' }, detail));
  });
  container.replaceChildren(h('table', { class: 'list', id: 'audit-table' },
    h('caption', { class: 'visually-hidden' }, 'Audit records, newest first'),
    h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Action', 'Where', 'Result', 'Actor', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

async function verify() {
  const out = document.getElementById('verify-result');
  const button = document.getElementById('audit-verify');
  out.className = 'verify-result';
  out.textContent = 'Verifying the audit chain…';
  button.disabled = true;
  try {
    const v = await api('api/v1/audit/verify');
    if (v && v.ok) {
      out.textContent = `Chain verified: ${v.records} records`;
      out.classList.add('ok');
    } else {
      out.textContent = `Chain verification FAILED after ${v ? v.records : '?'} records: ${v && v.reason ? v.reason : 'no reason given'}`;
      out.classList.add('error');
    }
  } catch (err) {
    if (err.status === 401) return;
    out.textContent = isMissingEndpoint(err)
      ? 'This clusterd does not serve audit/verify yet (404).'
      : describeError('Cannot verify the chain', err);
    out.classList.add('error');
  } finally {
    button.disabled = false;
  }
}
