// The Graph view: the dependency DAG of the active profile as inline SVG.
// Layout: longest-path layering, dependencies in the left columns, their
// dependents to the right. An edge goes from a dependent to its dependency
// (`from` depends on `to`); a blocking edge is red and thicker.
import { api, describeError, isMissingEndpoint } from './api.js';
import { h, svg, message, shortSha } from './dom.js';
import { setStatus } from './ui.js';

const NODE_H = 44;
const ROW_GAP = 26;
const COL_GAP = 90;
const PAD = 16;
const TOP = 30; // room for the lane above the first row

const REFRESH_MS = 5000;

let graph = null;
let selected = '';
let loading = 0;
let timer = null;
let active = false;

export function show() {
  active = true;
  load();
}

export function hide() {
  active = false;
  loading++;
  clearTimeout(timer);
  timer = null;
}

export function reset() {
  hide();
  graph = null;
  selected = '';
  document.getElementById('graph-container').replaceChildren();
  document.getElementById('graph-meta').replaceChildren();
  document.getElementById('graph-legend').replaceChildren();
  resetDetail();
}

function resetDetail() {
  message(document.getElementById('graph-detail'),
    'Select a service (click it, or Tab to it) to see its instances and why it is blocked.');
}

// Loads the graph, then again every 5 s while the view is shown.
async function load() {
  const gen = ++loading;
  clearTimeout(timer);
  const container = document.getElementById('graph-container');
  if (!graph) message(container, 'Loading the dependency graph…');
  try {
    const g = await api('api/v1/graph');
    if (gen !== loading) return;
    const same = graph && JSON.stringify(graph) === JSON.stringify(g);
    graph = g;
    if (!same) render();
    setStatus(`Graph updated ${new Date().toLocaleTimeString()}`);
    if (active) timer = setTimeout(load, REFRESH_MS);
  } catch (err) {
    if (gen !== loading || err.status === 401) return;
    if (active) timer = setTimeout(load, REFRESH_MS);
    if (isMissingEndpoint(err)) {
      message(container, 'This clusterd does not serve the graph yet (GET api/v1/graph answered 404).', 'error');
      setStatus('This clusterd does not serve the graph yet.', true);
    } else {
      message(container, describeError('Cannot load the graph', err), 'error');
      setStatus(describeError('Cannot load the graph', err), true);
    }
  }
}

// Longest-path layer of every service: 0 for those without dependencies.
export function layers(nodes, edges) {
  const deps = new Map(nodes.map((n) => [n.service, []]));
  for (const e of edges) {
    if (!deps.has(e.from)) deps.set(e.from, []);
    if (!deps.has(e.to)) deps.set(e.to, []);
    deps.get(e.from).push(e.to);
  }
  const layer = new Map();
  const visiting = new Set();
  const visit = (s) => {
    if (layer.has(s)) return layer.get(s);
    if (visiting.has(s)) return 0; // a cycle should not exist; do not loop
    visiting.add(s);
    let l = 0;
    for (const d of deps.get(s) || []) l = Math.max(l, visit(d) + 1);
    visiting.delete(s);
    layer.set(s, l);
    return l;
  };
  for (const s of deps.keys()) visit(s);
  return layer;
}

function render() {
  const container = document.getElementById('graph-container');
  const nodes = Array.isArray(graph.nodes) ? graph.nodes : [];
  const edges = Array.isArray(graph.edges) ? graph.edges : [];
  const meta = document.getElementById('graph-meta');
  meta.replaceChildren(h('span', {}, `Revision ${shortSha(graph.revision) || '—'}`),
    graph.profile ? h('span', {}, ` · profile ${graph.profile}`) : null,
    h('span', {}, ` · ${nodes.length} services, ${edges.length} dependencies, ${edges.filter((e) => e.blocking).length} blocking`));
  if (!nodes.length) {
    message(container, 'The active profile has no services.');
    return;
  }
  const byName = new Map(nodes.map((n) => [n.service, n]));
  for (const e of edges) {
    for (const s of [e.from, e.to]) {
      if (!byName.has(s)) byName.set(s, { service: s, health: 'unknown', instances: [] });
    }
  }
  const layer = layers([...byName.values()], edges);
  const columns = [];
  for (const [s, l] of layer) (columns[l] ||= []).push(s);
  const width = (s) => Math.max(120, Math.round(s.length * 8.2) + 34);
  const pos = new Map();
  let x = PAD;
  let maxY = 0;
  // Order each column by the mean row of its dependencies (fewer crossings).
  const row = new Map();
  const depsOf = (s) => edges.filter((e) => e.from === s && row.has(e.to)).map((e) => row.get(e.to));
  for (const col of columns) {
    if (!col) continue;
    const key = (s) => {
      const d = depsOf(s);
      return d.length ? d.reduce((a, b) => a + b, 0) / d.length : 0;
    };
    col.sort((a, b) => key(a) - key(b) || a.localeCompare(b));
    col.forEach((s, i) => row.set(s, i));
  }
  for (const col of columns) {
    if (!col) continue;
    const w = Math.max(...col.map(width));
    col.forEach((s, i) => {
      const y = TOP + i * (NODE_H + ROW_GAP);
      pos.set(s, { x, y, w });
      maxY = Math.max(maxY, y + NODE_H);
    });
    x += w + COL_GAP;
  }
  const totalW = x - COL_GAP + PAD;
  const totalH = maxY + PAD;

  const root = svg('svg', {
    class: 'graph', id: 'graph-svg', viewBox: `0 0 ${totalW} ${totalH}`, width: totalW, height: totalH,
    role: 'group', 'aria-label': 'Service dependency graph',
  });
  root.append(svg('defs', {},
    marker('arrow', 'arrowhead'), marker('arrow-blocking', 'arrowhead arrowhead-blocking')));

  const edgeLayer = svg('g', { class: 'edges' });
  // Blocking edges last, so they are drawn on top.
  const ordered = [...edges].sort((a, b) => Number(!!a.blocking) - Number(!!b.blocking));
  let lane = 0;
  for (const e of ordered) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x + b.w;
    const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    let d;
    if (layer.get(e.from) - layer.get(e.to) === 1) {
      d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 + 2} ${y2}`;
    } else {
      // Across several columns: run in the free lane above the higher of the
      // two rows, so the line never crosses a node in between.
      const offset = ((lane++ % 5) - 2) * 3;
      const ly = Math.min(a.y, b.y) - ROW_GAP / 2 + offset;
      d = `M ${x1} ${y1} C ${x1 - 28} ${y1}, ${x1 - 28} ${ly}, ${x1 - 56} ${ly} ` +
        `L ${x2 + 56} ${ly} C ${x2 + 28} ${ly}, ${x2 + 28} ${y2}, ${x2 + 2} ${y2}`;
    }
    const title = `${e.from} depends on ${e.to} (${e.condition || 'ready'})` +
      (e.blocking ? `: blocking ${(e.blocked || []).join(', ')} because of ${(e.by || []).join(', ')}` : '');
    edgeLayer.append(svg('path', {
      d,
      class: ['edge', e.blocking ? 'blocking' : '', `condition-${String(e.condition || 'ready').replace(/[^a-z]/g, '')}`],
      'data-edge': `${e.from}->${e.to}`,
      'marker-end': `url(#${e.blocking ? 'arrow-blocking' : 'arrow'})`,
    }, svg('title', {}, title)));
  }
  root.append(edgeLayer);

  const nodeLayer = svg('g', { class: 'nodes' });
  for (const [s, p] of pos) {
    const n = byName.get(s);
    const health = String(n.health || 'unknown').replace(/[^a-z]/g, '');
    const blockedBy = edges.filter((e) => e.from === s && e.blocking);
    const g = svg('g', {
      class: ['node', `health-${health}`, n.critical ? 'critical' : '', s === selected ? 'selected' : '', blockedBy.length ? 'blocked' : ''],
      'data-service': s, 'data-health': health, tabindex: 0, role: 'button',
      'aria-label': `${s}: ${health}${n.critical ? ', critical' : ''}${blockedBy.length ? ', blocked' : ''}`,
      transform: `translate(${p.x} ${p.y})`,
    },
    svg('rect', { width: p.w, height: NODE_H, rx: 8, ry: 8 }),
    svg('text', { x: p.w / 2, y: 19, 'text-anchor': 'middle', class: 'node-name' }, s),
    svg('text', { x: p.w / 2, y: 35, 'text-anchor': 'middle', class: 'node-sub' },
      `${health}${n.critical ? ' · critical' : ''}`));
    g.addEventListener('click', () => select(s));
    g.addEventListener('focus', () => select(s));
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        select(s);
      }
    });
    nodeLayer.append(g);
  }
  root.append(nodeLayer);
  const focused = document.activeElement && container.contains(document.activeElement)
    ? document.activeElement.getAttribute('data-service') : null;
  container.replaceChildren(root);
  if (focused) {
    for (const el of root.querySelectorAll('.node')) {
      if (el.getAttribute('data-service') === focused) el.focus({ preventScroll: true });
    }
  }
  renderLegend();
  if (selected && byName.has(selected)) renderDetail(selected);
}

function marker(id, cls) {
  return svg('marker', {
    id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 11, markerHeight: 11,
    orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse',
  }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: cls }));
}

function renderLegend() {
  const item = (cls, label) => h('li', {}, h('span', { class: ['swatch', cls], 'aria-hidden': 'true' }), label);
  document.getElementById('graph-legend').replaceChildren(
    h('ul', { class: 'legend-list', 'aria-label': 'Legend' },
      item('health-healthy', 'healthy'), item('health-degraded', 'degraded'),
      item('health-unhealthy', 'unhealthy'), item('health-stopped', 'stopped'),
      item('swatch-critical', 'critical service (thick border)'),
      item('swatch-edge', 'A → B: A depends on B'),
      item('swatch-blocking', 'blocking dependency')));
}

function select(service) {
  selected = service;
  for (const el of document.querySelectorAll('#graph-svg .node')) {
    el.classList.toggle('selected', el.getAttribute('data-service') === service);
  }
  renderDetail(service);
}

function renderDetail(service) {
  const box = document.getElementById('graph-detail');
  const n = (graph.nodes || []).find((x) => x.service === service) || { service, instances: [] };
  const edges = graph.edges || [];
  const deps = edges.filter((e) => e.from === service);
  const dependents = edges.filter((e) => e.to === service);
  const blocking = deps.filter((e) => e.blocking);
  const children = [
    h('h3', {}, service),
    h('p', {}, `Health: ${n.health || 'unknown'}${n.critical ? ' · critical service' : ''}`),
  ];
  const instances = n.instances || [];
  if (instances.length) {
    children.push(h('ul', { class: 'instances' }, instances.map((i) => h('li', { dataset: { instance: `${service}@${i.machine}` } },
      h('strong', {}, i.machine), `: ${i.state || 'unknown'}, ${i.ready ? 'ready' : 'not ready'}`,
      i.reason ? h('span', { class: 'reason' }, ` — ${i.reason}`) : null))));
  } else {
    children.push(h('p', { class: 'help' }, 'No instances in the active profile.'));
  }
  if (blocking.length) {
    children.push(h('h4', {}, 'Why it is blocked'));
    children.push(h('ul', { class: 'why' }, blocking.map((e) => h('li', {},
      `${(e.blocked || []).join(', ') || service} waits for ${e.to} to be ${e.condition === 'started' ? 'started' : 'ready'}; not yet: ${(e.by || []).join(', ') || e.to}`))));
  }
  if (deps.length) children.push(h('p', {}, 'Depends on: ', deps.map((e) => `${e.to} (${e.condition || 'ready'})`).join(', ')));
  if (dependents.length) children.push(h('p', {}, 'Needed by: ', dependents.map((e) => e.from).join(', ')));
  box.replaceChildren(...children);
}
