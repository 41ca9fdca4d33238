// Helpers shared by the pages of one mount type.
import { h, enc } from '../dom.js';
import * as api from '../api.js';
import { card, mountTabs } from '../ui.js';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const NAME_MSG = 'a name is 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit.';

// pickMount resolves the mount of a page: the one named, else the first of
// the type. It returns {list, mount} or a card that explains what is missing.
export async function pickMount(type, wanted, route) {
  let list;
  try {
    list = (await api.mounts()).filter((m) => m.type === type);
  } catch (e) {
    // A token may use a mount without the right to list mounts: with the
    // mount named in the route, the page goes on and each request says
    // what the token may do there.
    if (!(e instanceof api.ApiError && e.status === 403 && wanted)) throw e;
    list = [{ path: wanted, type }];
  }
  if (!list.length) {
    return { missing: card(`No ${type} mount`, h('p', null, `Enable a ${type} mount on the `, h('a', { href: '#/' }, 'dashboard'), ' first.')) };
  }
  const mount = wanted ? list.find((m) => m.path === wanted) : list[0];
  if (!mount) return { missing: card('Not found', h('p', null, `There is no ${type} mount at `, h('code', null, wanted + '/'), '.')) };
  return { list, mount, tabs: mountTabs(list, mount.path, route), p: api.mountPath(mount.path), m: enc(mount.path) };
}

// crumbs is a breadcrumb trail: strings, or [label, href] links.
export function crumbs(...items) {
  return h('nav', { class: 'crumbs', 'aria-label': 'breadcrumbs' }, items.map((it, i) => [
    i ? h('span', { class: 'sep' }, ' / ') : null,
    Array.isArray(it) ? h('a', { href: it[1] }, it[0]) : h('span', null, it),
  ]));
}
