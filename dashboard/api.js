// The authenticated API client. The token lives in sessionStorage only: it is
// never put in a URL, in localStorage or in a log. Every URL is relative, so
// the page works behind a reverse proxy that serves clusterd under a prefix.

const TOKEN_KEY = 'clusterd-token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// An answer other than 2xx, or no answer at all (status 0).
export class ApiError extends Error {
  constructor(status, message, parameter) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.parameter = parameter || '';
  }
}

// Called with the ApiError of any 401, so the app can drop its data and ask
// for the token again.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// api('api/v1/status') -> parsed JSON. Throws ApiError.
export async function api(path, { method = 'GET', body, params } = {}) {
  let url = path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const headers = { Accept: 'application/json', Authorization: `Bearer ${getToken()}` };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach clusterd (${e && e.message ? e.message : 'network error'})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : (res.statusText || 'error');
    const err = new ApiError(res.status, msg, data && data.parameter);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  if (data === null && text) throw new ApiError(res.status, 'clusterd answered something that is not JSON');
  return data;
}

// A human sentence for an error, naming what was asked.
export function describeError(what, err) {
  if (!(err instanceof ApiError)) return `${what}: ${err && err.message ? err.message : err}`;
  if (err.status === 0) return `${what}: ${err.message}`;
  const param = err.parameter ? ` (parameter ${err.parameter})` : '';
  return `${what}: clusterd answered ${err.status}: ${err.message}${param}`;
}

// True for the 404 of an endpoint this clusterd does not serve yet.
export function isMissingEndpoint(err) {
  return err instanceof ApiError && err.status === 404;
}
