// The console's shell: sign-in state, the navigation and a router over the
// URL fragment (#/keys/..., so the token or a secret never travels in a URL
// a server could see: the fragment is not sent, and holds only names).
import { h, replace } from './dom.js';
import { hasToken, clearToken, read, ApiError } from './api.js';
import { errorBox } from './ui.js';
import * as signin from './pages/signin.js';
import * as dashboard from './pages/dashboard.js';
import * as keys from './pages/keys.js';
import * as key from './pages/key.js';
import * as kms from './pages/kms.js';
import * as kmip from './pages/kmip.js';
import * as kmipRole from './pages/kmip_role.js';
import * as xks from './pages/xks.js';
import * as audit from './pages/audit.js';
import { NAME_RE } from './pages/common.js';

// Routes: pattern segments, ':x' captures one (decoded) segment.
// A captured segment must be a name the appliance accepts (PARAMS): the
// pages put it into API paths, where "." or ".." would name another
// object (a DELETE of scope/prod/role/.. is one of scope/prod/).
const routes = [
  ['signin', signin],
  ['', dashboard],
  ['keys', keys],
  ['keys/:mount', keys],
  ['keys/:mount/key/:name', key],
  ['keys/:mount/kms', kms],
  ['keys/:mount/kms/:kms', kms],
  ['kmip', kmip],
  ['kmip/:mount', kmip],
  ['kmip/:mount/scope/:scope', kmip],
  ['kmip/:mount/scope/:scope/role/:role', kmipRole],
  ['xks', xks],
  ['xks/:mount', xks],
  ['audit', audit],
  ['audit/:device', audit],
];

// MOUNT_RE is a mount or audit device path: segments of letters, digits,
// '.', '_' and '-', none of them "." or "..".
const MOUNT_RE = /^(?!\.\.?(\/|$))[A-Za-z0-9_.-]+(\/(?!\.\.?(\/|$))[A-Za-z0-9_.-]+)*$/;
const validMount = (v) => v.length <= 128 && MOUNT_RE.test(v);
const validName = (v) => NAME_RE.test(v);
const PARAMS = { mount: validMount, device: validMount, name: validName, kms: validName, scope: validName, role: validName };

const NAV = [
  ['#/', 'Dashboard', ''],
  ['#/keys', 'Keys', 'keys'],
  ['#/kmip', 'KMIP', 'kmip'],
  ['#/xks', 'XKS', 'xks'],
  ['#/audit', 'Audit', 'audit'],
];

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?');
  const segs = p.split('/').filter((x) => x !== '');
  const query = Object.fromEntries(new URLSearchParams(q || ''));
  return { segs, query };
}

function match(segs) {
  for (const [pattern, page] of routes) {
    const ps = pattern === '' ? [] : pattern.split('/');
    if (ps.length !== segs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < ps.length; i++) {
      let seg;
      try {
        seg = decodeURIComponent(segs[i]);
      } catch {
        ok = false;
        break;
      }
      if (ps[i].startsWith(':')) {
        const k = ps[i].slice(1);
        if (!PARAMS[k](seg)) { ok = false; break; }
        params[k] = seg;
      } else if (ps[i] !== seg) { ok = false; break; }
    }
    if (ok) return { page, params };
  }
  return null;
}

let cleanup = null;
let me = null; // lookup-self of the signed-in token
let signoutMessage = '';

// takeSignoutMessage returns, once, why the operator was signed out.
export function takeSignoutMessage() {
  const m = signoutMessage;
  signoutMessage = '';
  return m;
}

export function whoami() {
  return me;
}

// signedIn records the token's facts after a successful sign-in.
export function signedIn(self) {
  me = self;
  renderHeader();
}

export function signOut(message) {
  clearToken();
  me = null;
  renderHeader();
  signoutMessage = message || '';
  window.location.hash = '#/signin';
}

function renderHeader() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  const { segs } = parseHash();
  const here = segs[0] || '';
  if (!hasToken()) {
    replace(nav);
    replace(who);
    return;
  }
  replace(nav, NAV.map(([href, label, top]) => h('a', { href, class: here === top ? 'current' : '', 'aria-current': here === top ? 'page' : null }, label)));
  replace(who,
    me ? h('span', { class: 'who', title: 'policies: ' + (me.policies || []).join(', ') },
      me.display_name || 'token', ' · ', (me.policies || []).join(', ')) : null,
    h('button', { type: 'button', class: 'btn small', 'data-testid': 'signout', on: { click: () => signOut('Signed out.') } }, 'Sign out'));
}

// routeSeq numbers route() calls; only the latest one's page is shown.
let routeSeq = 0;

async function route() {
  if (cleanup) {
    try { cleanup(); } catch { /* page already gone */ }
    cleanup = null;
  }
  const main = document.getElementById('main');
  const hash = window.location.hash;
  const seq = ++routeSeq;
  delete main.dataset.shown;
  const { segs, query } = parseHash();
  if (!hasToken() && segs[0] !== 'signin') {
    window.location.hash = '#/signin';
    return;
  }
  if (hasToken() && !me && segs[0] !== 'signin') {
    try {
      me = await read('auth/token/lookup-self');
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) {
        signOut('Your token is no longer valid: ' + e.errors.join('; '));
        return;
      }
    }
    if (seq !== routeSeq) return; // a newer route() call took over meanwhile
  }
  renderHeader();
  const m = match(segs);
  if (!m) {
    replace(main, h('section', { class: 'card' }, h('h1', null, 'Not found'), h('p', null, 'No such page in the console. '), h('a', { href: '#/' }, 'Back to the dashboard')));
    shown(main, hash);
    return;
  }
  // A page renders asynchronously; if another route() call started
  // meanwhile (even one back to this same route), that call shows its own
  // page and this one is dropped (its timers stopped), so a slow answer
  // never replaces the page the user moved to, nor runs beside it.
  let leave = null;
  const ctx = { onLeave: (fn) => { leave = fn; } };
  let content;
  try {
    content = await m.page.render(m.params, query, ctx);
  } catch (e) {
    const title = (NAV.find(([, , top]) => top === (segs[0] || '')) || [, 'Keyhold'])[1];
    content = h('div', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', null, title)), errorBox(e));
  }
  if (seq !== routeSeq) {
    if (leave) {
      try { leave(); } catch { /* nothing to stop */ }
    }
    return;
  }
  cleanup = leave;
  replace(main, content);
  shown(main, hash);
  document.title = 'Keyhold · ' + (main.querySelector('h1')?.textContent || 'console');
}

// shown marks which route the main element shows, once it is rendered.
function shown(main, hash) {
  main.dataset.shown = hash;
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', route);
