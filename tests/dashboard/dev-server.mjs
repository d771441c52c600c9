// Development aid, not used by the tests: serves dashboard/ the way clusterd
// does (same Content-Security-Policy, relative URLs under an optional prefix)
// and proxies api/ to a running clusterd, e.g. the one of clusterctl-demo.
//
//   CLUSTERD_UPSTREAM=http://127.0.0.1:7480 node tests/dashboard/dev-server.mjs
//
// Environment:
//   CLUSTERD_UPSTREAM  clusterd's address (default http://127.0.0.1:7480)
//   DEV_PORT           where to listen on 127.0.0.1 (default 7490)
//   DEV_PREFIX         serve under this path prefix, as a reverse proxy would
//                      (default "/"; e.g. "/clusterd/")
//   DEV_MOCK_REPO      a git directory (the demo's origin.git): when clusterd
//                      answers 404 "no such endpoint" for api/v1/graph,
//                      api/v1/revisions/diff or api/v1/audit/verify, answer a
//                      stand-in built from the status document and that
//                      repository instead. Development only; unset = plain proxy.
//   DEV_MOCK_BLOCKING  with DEV_MOCK_REPO, edges ("a->b,c->d") the stand-in
//                      graph reports as blocking.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../dashboard');
const upstream = new URL(process.env.CLUSTERD_UPSTREAM || 'http://127.0.0.1:7480');
const port = Number(process.env.DEV_PORT || 7490);
let prefix = process.env.DEV_PREFIX || '/';
if (!prefix.startsWith('/')) prefix = `/${prefix}`;
if (!prefix.endsWith('/')) prefix += '/';
const mockRepo = process.env.DEV_MOCK_REPO || '';
const mockBlocking = new Set((process.env.DEV_MOCK_BLOCKING || '').split(',').filter(Boolean));

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "connect-src 'self'; frame-ancestors 'none'";
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml',
};

function send(res, code, type, body, extra = {}) {
  res.writeHead(code, {
    'Content-Type': type, 'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-store', ...extra,
  });
  res.end(body);
}

function upstreamRequest(method, apiPath, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: upstream.hostname, port: upstream.port || 80, method, path: apiPath,
      headers: { ...headers, host: upstream.host },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function git(...args) {
  return execFileSync('git', ['--git-dir', mockRepo, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
}

// Stand-ins for endpoints the C++ side has not landed yet (DEV_MOCK_REPO only).
async function mock(route, url, headers) {
  const get = async (p) => JSON.parse((await upstreamRequest('GET', p, headers)).body.toString());
  if (route === '/api/v1/graph') {
    const st = await get('/api/v1/status');
    const rev = st.revision;
    const nodes = [];
    const edges = [];
    const docs = git('ls-tree', '--name-only', `${rev}:services`).trim().split('\n')
      .flatMap((f) => git('show', `${rev}:services/${f}`).split(/^---$/m));
    for (const [svc, s] of Object.entries(st.services || {})) {
      const inst = Object.entries(s.instances || {}).map(([m, i]) => ({ machine: m, state: i.state, ready: !!i.ready, reason: i.reason || '' }));
      const health = inst.every((i) => i.state === 'running' && i.ready) ? 'healthy'
        : inst.some((i) => i.state === 'running') ? 'degraded' : 'unhealthy';
      nodes.push({ service: svc, critical: !!s.critical, health, instances: inst });
      const yaml = (docs.find((d) => new RegExp(`name:\\s*${svc}\\b`).test(d)) || '').split(/dependsOn:/)[1] || '';
      for (const m of yaml.matchAll(/\{\s*service:\s*([A-Za-z0-9._-]+)(?:,\s*condition:\s*(\w+))?/g)) {
        const key = `${svc}->${m[1]}`;
        const blocking = mockBlocking.has(key);
        edges.push({ from: svc, to: m[1], condition: m[2] || 'ready', blocking,
          blocked: blocking ? inst.map((i) => `${svc}@${i.machine}`) : [], by: blocking ? [`${m[1]}@?`] : [] });
      }
    }
    return { revision: rev, profile: st.profile, nodes, edges };
  }
  if (route === '/api/v1/revisions/diff') {
    const from = url.searchParams.get('from');
    const to = url.searchParams.get('to');
    const names = git('diff', '--name-status', from, to).trim().split('\n').filter(Boolean);
    const files = names.map((l) => {
      const [st, p] = l.split('\t');
      const d = git('diff', '-U3', from, to, '--', p).split('\n');
      const at = d.findIndex((x) => x.startsWith('@@'));
      return { path: p, status: st === 'A' ? 'added' : st === 'D' ? 'removed' : 'modified', diff: at < 0 ? '' : d.slice(at).join('\n') };
    });
    return { from, to, files };
  }
  if (route === '/api/v1/audit/verify') {
    const a = await get('/api/v1/audit?limit=1');
    return { ok: true, records: a.records && a.records[0] ? a.records[0].seq : 0, reason: '' };
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (!url.pathname.startsWith(prefix)) {
      send(res, 404, 'text/plain', 'not under the prefix\n');
      return;
    }
    const rel = url.pathname.slice(prefix.length);
    if (rel.startsWith('api/')) {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const headers = {};
      for (const h of ['authorization', 'content-type', 'accept', 'x-clusterctl-actor']) {
        if (req.headers[h]) headers[h] = req.headers[h];
      }
      const body = Buffer.concat(chunks);
      if (body.length) headers['content-length'] = String(body.length);
      const apiPath = `/${rel}${url.search}`;
      const r = await upstreamRequest(req.method, apiPath, headers, body.length ? body : undefined);
      if (mockRepo && r.status === 404 && /no such endpoint/.test(r.body.toString())) {
        const m = await mock(`/${rel}`, url, headers);
        if (m) {
          send(res, 200, 'application/json', JSON.stringify(m), { 'X-Dev-Mock': 'true' });
          return;
        }
      }
      const extra = {};
      if (r.headers['www-authenticate']) extra['WWW-Authenticate'] = r.headers['www-authenticate'];
      send(res, r.status, r.headers['content-type'] || 'application/json', r.body, extra);
      return;
    }
    const name = rel === '' ? 'index.html' : rel;
    if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(name)) {
      send(res, 404, 'text/plain', 'not found\n');
      return;
    }
    const file = path.join(root, name);
    if (!fs.existsSync(file)) {
      send(res, 404, 'text/plain', 'not found\n');
      return;
    }
    send(res, 200, TYPES[path.extname(name)], fs.readFileSync(file));
  } catch (e) {
    send(res, 502, 'application/json', JSON.stringify({ error: `dev server: ${e.message}` }));
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`dashboard dev server on http://127.0.0.1:${port}${prefix} -> ${upstream.origin}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
