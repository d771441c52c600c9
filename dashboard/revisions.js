// The Revisions view: applied and rejected revisions, newest first, and the
// diff of the desired state between two of them.
import { api, describeError, isMissingEndpoint } from './api.js';
import { h, timeEl, shortSha, message } from './dom.js';
import { setStatus } from './ui.js';

let revisions = [];
const picked = new Set();
let loading = 0;

export function init() {
  document.getElementById('compare-selected').addEventListener('click', () => {
    const chosen = revisions.filter((r) => picked.has(r.commit));
    if (chosen.length !== 2) return;
    // Newest first: the second one is the older, the "from".
    showDiff(chosen[1].commit, chosen[0].commit);
  });
}

export function show() {
  load();
}

export function hide() {}

export function reset() {
  revisions = [];
  picked.clear();
  document.getElementById('revisions-container').replaceChildren();
  document.getElementById('revision-diff').replaceChildren();
  updateCompareButton();
}

async function load() {
  const gen = ++loading;
  const container = document.getElementById('revisions-container');
  if (!revisions.length) message(container, 'Loading revisions…');
  try {
    const list = await api('api/v1/revisions', { params: { limit: 50 } });
    if (gen !== loading) return;
    revisions = Array.isArray(list) ? list : [];
    for (const c of [...picked]) if (!revisions.some((r) => r.commit === c)) picked.delete(c);
    render();
    setStatus(`Revisions loaded ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (gen !== loading || err.status === 401) return;
    message(container, describeError('Cannot load the revisions', err), 'error');
    setStatus(describeError('Cannot load the revisions', err), true);
  }
}

function render() {
  const container = document.getElementById('revisions-container');
  if (!revisions.length) {
    message(container, 'No revision has been applied yet.');
    return;
  }
  const rows = revisions.map((r, i) => {
    const box = h('input', { type: 'checkbox', 'aria-label': `Select ${shortSha(r.commit)} for comparison` });
    box.checked = picked.has(r.commit);
    box.addEventListener('change', () => {
      if (box.checked) picked.add(r.commit); else picked.delete(r.commit);
      if (picked.size > 2) {
        // Keep the two most recently ticked.
        const first = picked.values().next().value;
        picked.delete(first);
        for (const el of container.querySelectorAll('tr[data-commit] input[type=checkbox]')) {
          el.checked = picked.has(el.closest('tr').dataset.commit);
        }
      }
      updateCompareButton();
    });
    const prev = revisions[i + 1];
    const compare = prev
      ? h('button', { type: 'button', class: 'small compare-previous', 'aria-label': `Compare ${shortSha(r.commit)} with the previous revision ${shortSha(prev.commit)}` }, 'Compare with previous')
      : h('span', { class: 'muted' }, 'oldest');
    if (prev) compare.addEventListener('click', () => showDiff(prev.commit, r.commit));
    const result = String(r.result || '');
    return h('tr', { dataset: { commit: r.commit || '', result, quarantined: r.quarantined ? 'true' : 'false' }, class: r.quarantined ? 'quarantined' : '' },
      h('td', {}, box),
      h('td', {}, h('code', { title: r.commit || '' }, shortSha(r.commit)),
        r.quarantined ? h('span', { class: 'badge quarantine-badge', title: 'quarantined by a rollback' }, 'quarantined') : null),
      h('td', { class: 'message' }, r.message || ''),
      h('td', {}, r.author || ''),
      h('td', {}, timeEl(r.commit_time)),
      h('td', {}, timeEl(r.applied_at)),
      h('td', {}, h('span', { class: ['badge', `result-${result.replace(/[^a-z_]/gi, '')}`] }, result || '—'),
        r.detail ? h('div', { class: 'small-text' }, r.detail) : null),
      h('td', {}, `${r.actor || ''}`, r.trigger ? h('div', { class: 'small-text' }, r.trigger) : null),
      h('td', {}, compare));
  });
  container.replaceChildren(h('table', { class: 'list', id: 'revisions-table' },
    h('caption', { class: 'visually-hidden' }, 'Revisions, newest first'),
    h('thead', {}, h('tr', {}, ['', 'Commit', 'Message', 'Author', 'Committed', 'Applied', 'Result', 'By', 'Diff']
      .map((t) => h('th', { scope: 'col' }, t ? t : h('span', { class: 'visually-hidden' }, 'Select'))))),
    h('tbody', {}, rows)));
  updateCompareButton();
}

function updateCompareButton() {
  const b = document.getElementById('compare-selected');
  b.disabled = picked.size !== 2;
}

async function showDiff(from, to) {
  const box = document.getElementById('revision-diff');
  message(box, `Loading the diff ${shortSha(from)}..${shortSha(to)}…`);
  try {
    const d = await api('api/v1/revisions/diff', { params: { from, to } });
    renderDiff(box, d, from, to);
  } catch (err) {
    if (err.status === 401) return;
    if (isMissingEndpoint(err) && /no such endpoint/i.test(err.message)) {
      message(box, 'This clusterd does not serve revision diffs yet (GET api/v1/revisions/diff answered 404).', 'error');
    } else {
      message(box, describeError(`Cannot load the diff ${shortSha(from)}..${shortSha(to)}`, err), 'error');
    }
  }
}

function renderDiff(box, d, from, to) {
  const files = Array.isArray(d.files) ? d.files : [];
  const children = [h('h3', { id: 'diff-title' }, 'Desired state from ', h('code', {}, shortSha(d.from || from)),
    ' to ', h('code', {}, shortSha(d.to || to)), `: ${files.length} file${files.length === 1 ? '' : 's'} changed`)];
  if (!files.length) children.push(h('p', { class: 'help' }, 'The desired state is the same in both revisions.'));
  for (const f of files) {
    const status = String(f.status || 'modified').replace(/[^a-z]/g, '');
    const pre = h('pre', { class: 'diff-body' });
    for (const line of String(f.diff || '').split('\n')) {
      let cls = 'ctx';
      if (line.startsWith('@@')) cls = 'hunk';
      else if (line.startsWith('+')) cls = 'add';
      else if (line.startsWith('-')) cls = 'del';
      pre.append(h('span', { class: ['line', cls] }, line || ' '), '\n');
    }
    children.push(h('section', { class: 'diff-file', dataset: { path: f.path || '', status } },
      h('h4', {}, h('span', { class: ['badge', `file-${status}`] }, status), ' ', h('code', {}, f.path || '')),
      pre));
  }
  box.replaceChildren(...children);
}
