// The console's only way to the appliance: the public REST API under /v1,
// with the token in the X-Vault-Token header. The token lives in memory and,
// if the operator chose so at sign-in, in this tab's sessionStorage; it is
// never put in a URL, a cookie or the page.

const STORE_KEY = 'keyhold.console.token';
let token = '';
try {
  token = sessionStorage.getItem(STORE_KEY) || '';
} catch {
  token = '';
}

export function hasToken() {
  return token !== '';
}

// setToken keeps the token for the requests that follow; remember keeps it
// in sessionStorage too (it survives a reload of this tab, not its close).
export function setToken(t, remember) {
  token = t;
  try {
    if (t && remember) sessionStorage.setItem(STORE_KEY, t);
    else sessionStorage.removeItem(STORE_KEY);
  } catch {
    /* storage refused: memory only */
  }
}

export function clearToken() {
  setToken('', false);
}

// ApiError is a refused or failed request: the HTTP status (0 when the
// appliance could not be reached) and the server's error messages.
export class ApiError extends Error {
  constructor(status, errors, method, path) {
    super(errors.join('; ') || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.method = method;
    this.path = path;
  }
  // capability is what Vault's policy language calls the refused operation.
  get capability() {
    if (this.method === 'LIST') return 'list';
    if (this.method === 'GET') return 'read';
    if (this.method === 'DELETE') return 'delete';
    return 'create/update';
  }
}

// PathRefused is a request the console would not send: its path is not
// the one the browser would request.
export class PathRefused extends Error {}

// buildURL refuses a path the URL parser would change: it collapses "."
// and ".." segments (written plain or as %2e), so a request for
// scope/prod/role/.. would go to scope/prod/. The pages encode each segment
// with encodeURIComponent, which the parser keeps as it is.
function buildURL(path, query) {
  const u = new URL('/v1/' + path, window.location.origin);
  if (u.pathname !== '/v1/' + path) {
    throw new PathRefused(`refused to send a request for ${JSON.stringify(path)}: the browser would send it to ${u.pathname}`);
  }
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u;
}

// raw sends a request and returns the Response, whatever its status.
async function raw(method, path, { body, query, accept } = {}) {
  const headers = { Accept: accept || 'application/json' };
  if (token) headers['X-Vault-Token'] = token;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const httpMethod = method === 'LIST' ? 'GET' : method;
  if (method === 'LIST') query = { ...query, list: 'true' };
  const u = buildURL(path, query);
  try {
    return await fetch(u, {
      method: httpMethod, headers, body: payload,
      cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new ApiError(0, [`the appliance cannot be reached (${e.message})`], method, path);
  }
}

async function errorOf(resp, method, path) {
  let errors = [];
  try {
    const j = await resp.json();
    if (Array.isArray(j.errors)) errors = j.errors.map(String);
  } catch {
    /* not JSON */
  }
  if (errors.length === 0) errors = [`HTTP ${resp.status} ${resp.statusText}`.trim()];
  return new ApiError(resp.status, errors, method, path);
}

// request sends a request and returns the decoded JSON body (null for 204);
// a status of 400 and above throws an ApiError with the server's messages.
export async function request(method, path, opts = {}) {
  const resp = await raw(method, path, opts);
  if (!resp.ok) throw await errorOf(resp, method, path);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

// read returns the data of a read.
export async function read(path, query) {
  const r = await request('GET', path, { query });
  return r ? r.data : null;
}

// list returns the keys of a LIST; an empty list answers 404, as in Vault.
export async function list(path) {
  try {
    const r = await request('LIST', path);
    return (r && r.data && r.data.keys) || [];
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return [];
    throw e;
  }
}

// listInfo returns keys and key_info of a LIST that has them.
export async function listInfo(path) {
  try {
    const r = await request('LIST', path);
    return { keys: (r && r.data && r.data.keys) || [], info: (r && r.data && r.data.key_info) || {} };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { keys: [], info: {} };
    throw e;
  }
}

export async function write(path, body) {
  const r = await request('POST', path, { body: body || {} });
  return r ? r.data : null;
}

export async function del(path, query) {
  await request('DELETE', path, { query });
}

// health returns sys/health's body and status: it answers 503 with a body
// when the appliance is unhealthy.
export async function health() {
  const resp = await raw('GET', 'sys/health');
  let body = {};
  try {
    body = await resp.json();
  } catch {
    body = {};
  }
  return { status: resp.status, body };
}

// metricsText returns sys/metrics in the Prometheus text format.
export async function metricsText() {
  const resp = await raw('GET', 'sys/metrics', { accept: 'text/plain' });
  if (!resp.ok) throw await errorOf(resp, 'GET', 'sys/metrics');
  return resp.text();
}

// mounts returns the mounts as [{path, type, description, accessor}], sorted.
export async function mounts() {
  const d = await read('sys/mounts');
  return Object.entries(d || {})
    .map(([p, m]) => ({ path: p.replace(/\/$/, ''), type: m.type, description: m.description || '', accessor: m.accessor || '' }))
    .sort((a, b) => a.path.localeCompare(b.path));
}

// mountPath turns a mount path into its API prefix (its segments are
// letters, digits, '.', '_' and '-', so it needs no encoding).
export function mountPath(p) {
  return p.split('/').map(encodeURIComponent).join('/');
}
