// DOM construction without HTML strings. Every value from the server goes
// into the page as a text node or an attribute value, never as markup: this
// module is the only place that creates elements, and it has no path from a
// string to HTML (the page's Trusted Types policy would refuse one anyway).

const SVG_NS = 'http://www.w3.org/2000/svg';

// Attributes that may carry a URL: only fragment links and blob: downloads.
const URL_ATTRS = new Set(['href', 'src', 'action', 'formaction', 'xlink:href']);

function safeURL(v) {
  const s = String(v);
  return s.startsWith('#') || s.startsWith('blob:') ? s : '#';
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected' || k === 'open') {
      el[k] = v;
    } else if (k.startsWith('on')) {
      throw new Error('event handler attributes are not allowed: use on: {...}');
    } else if (URL_ATTRS.has(k)) {
      el.setAttribute(k, safeURL(v));
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// h makes an HTML element: h('a', {href: '#/keys', class: 'x'}, 'text', child).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// s makes an SVG element.
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// replace empties el and fills it with the children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// fmtTime renders an RFC 3339 time or a Unix time in seconds, local time.
export function fmtTime(v) {
  if (v === undefined || v === null || v === '') return '';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  if (isNaN(d.getTime())) return String(v);
  return d.toLocaleString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// fmtNum renders a number compactly.
export function fmtNum(n, digits = 2) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return n.toLocaleString(undefined, { maximumFractionDigits: 0 });
  return n.toLocaleString(undefined, { maximumFractionDigits: digits });
}

// fmtMs renders seconds as milliseconds.
export function fmtMs(sec) {
  if (sec === undefined || sec === null || Number.isNaN(sec)) return '–';
  const ms = sec * 1000;
  return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';
}

// enc encodes one path segment of an API path or a console route.
export const enc = encodeURIComponent;
