// Building blocks of the console's pages: cards that load on their own and
// show the server's error in place, tables, forms that validate before they
// send, confirmation by typing the name, one-time secrets and downloads.
import { h, replace } from './dom.js';
import { ApiError, PathRefused } from './api.js';

export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', null, title) : null, ...children);
}

// errorBox explains a failure: a refused capability in plain words, and the
// server's own messages as they came.
export function errorBox(err) {
  const box = h('div', { class: 'error', role: 'alert' });
  if (err instanceof ApiError) {
    if (err.status === 403 && err.errors.some((m) => /invalid or expired token|no token/.test(m))) {
      box.append(h('strong', null, 'Your token is not valid (any more). '), h('a', { href: '#/signin' }, 'Sign in again'), '.');
    } else if (err.status === 403) {
      box.append(
        h('strong', null, 'Permission denied. '),
        `Your token lacks the ${err.capability} capability on `,
        h('code', null, err.path),
        err.path.startsWith('sys/audit') ? ' (audit paths also need sudo).' : '.',
        ' Ask for a policy that grants it.',
      );
    } else if (err.status === 0) {
      box.append(h('strong', null, 'The appliance cannot be reached. '));
    } else {
      box.append(h('strong', null, `Error ${err.status} `), 'on ', h('code', null, `${err.method} ${err.path}`), ':');
    }
    box.append(h('ul', { class: 'server-errors' }, err.errors.map((m) => h('li', null, m))));
  } else {
    box.append(h('strong', null, 'Error: '), String((err && err.message) || err));
  }
  return box;
}

// load fills el with what fn returns, showing progress and then the error
// if fn fails; a page never stays blank.
export async function load(el, fn) {
  replace(el, h('p', { class: 'loading' }, 'Loading…'));
  try {
    const out = await fn();
    replace(el, out);
  } catch (e) {
    replace(el, errorBox(e));
    if (!(e instanceof ApiError || e instanceof PathRefused)) console.error(e);
  }
  return el;
}

// section is a card whose body is loaded by fn.
export function section(title, fn, ...extra) {
  const body = h('div', { class: 'card-body' });
  const c = card(title, body, ...extra);
  c.reload = () => load(body, fn);
  // Loaded after the caller has the card, so fn may refer to it.
  queueMicrotask(c.reload);
  return c;
}

export function table(columns, rows, { empty = 'Nothing yet.', cls = '', testid } = {}) {
  if (!rows.length) return h('p', { class: 'empty', 'data-testid': testid }, empty);
  return h('table', { class: 'grid ' + cls, 'data-testid': testid },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))),
    h('tbody', null, rows.map((r) => h('tr', null, columns.map((c) => h('td', { class: c.cls }, c.render(r)))))),
  );
}

export function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function badge(text, kind = '') {
  return h('span', { class: 'badge ' + kind }, text);
}

export function button(label, onClick, { kind = '', disabled = false, title, type = 'button', testid } = {}) {
  return h('button', { type, class: 'btn ' + kind, disabled, title, 'data-testid': testid, on: onClick ? { click: onClick } : null }, label);
}

// run disables a button while an action runs and shows its error, or its
// result, in the given place.
export async function run(btn, out, fn) {
  btn.disabled = true;
  try {
    const msg = await fn();
    if (out) replace(out, msg ? h('p', { class: 'ok', role: 'status' }, msg) : null);
    return true;
  } catch (e) {
    if (out) replace(out, errorBox(e));
    return false;
  } finally {
    btn.disabled = false;
  }
}

// flash shows a short message at the top of the page.
export function flash(msg, kind = 'ok') {
  const area = document.getElementById('flash');
  if (!area) return;
  const m = h('div', { class: 'flash ' + kind, role: 'status' }, msg);
  area.append(m);
  while (area.children.length > 3) area.firstChild.remove();
  setTimeout(() => m.remove(), 6000);
}

// download hands text to the browser as a file, without a server round trip.
export function download(filename, text, type = 'application/octet-stream') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

let fieldSeq = 0;

function fieldInput(f, id) {
  const common = { id, name: f.name, 'aria-describedby': id + '-err', 'aria-required': f.required ? 'true' : null };
  switch (f.kind) {
    case 'select':
      return h('select', common, (f.options || []).map(([v, l]) => h('option', { value: v, selected: v === f.value }, l)));
    case 'checkbox':
      return h('input', { ...common, type: 'checkbox', checked: !!f.value });
    case 'checks':
      return h('div', { class: 'checks', id, role: 'group' }, (f.options || []).map(([v, l]) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: f.name, value: v, checked: (f.value || []).includes(v) }), ' ', l)));
    case 'textarea':
      return h('textarea', { ...common, rows: f.rows || 4, placeholder: f.placeholder, spellcheck: 'false', autocomplete: 'off', value: f.value || '' });
    default:
      return h('input', {
        ...common,
        type: f.kind === 'password' ? 'password' : f.kind === 'number' ? 'number' : 'text',
        placeholder: f.placeholder, min: f.min, max: f.max,
        autocomplete: f.kind === 'password' ? 'new-password' : 'off', spellcheck: 'false',
        value: f.value === undefined || f.value === null ? '' : (Array.isArray(f.value) ? f.value.join(', ') : String(f.value)),
      });
  }
}

function fieldValue(f, el) {
  switch (f.kind) {
    case 'checkbox':
      return el.checked;
    case 'checks':
      return [...el.querySelectorAll('input:checked')].map((i) => i.value);
    case 'number':
      return el.value.trim() === '' ? undefined : Number(el.value);
    case 'list':
      return el.value.split(/[,\n]/).map((x) => x.trim()).filter(Boolean);
    case 'password':
    case 'textarea':
      return el.value;
    default:
      return el.value.trim();
  }
}

function isEmpty(v) {
  return v === undefined || v === '' || (Array.isArray(v) && v.length === 0);
}

function checkField(f, v, values) {
  if (isEmpty(v)) return f.required ? (f.requiredMsg || 'Required.') : null;
  if (f.kind === 'number') {
    if (!Number.isInteger(v)) return 'A whole number, please.';
    if (f.min !== undefined && v < f.min) return `At least ${f.min}.`;
    if (f.max !== undefined && v > f.max) return `At most ${f.max}.`;
  }
  if (f.pattern) {
    const items = Array.isArray(v) ? v : [v];
    const bad = items.find((x) => !f.pattern.test(x));
    if (bad !== undefined) return `${JSON.stringify(bad)}: ${f.patternMsg || 'not valid here.'}`;
  }
  if (f.kind === 'select' && f.options && !f.options.some(([o]) => o === v)) return 'Pick one of the choices.';
  if (f.check) return f.check(v, values) || null;
  return null;
}

// isSecret is a field whose value is emptied after each submit, sent or
// refused by the server: password inputs and fields marked secret (a key
// file pasted in a textarea).
const isSecret = (f) => f.kind === 'password' || f.secret === true;

// form builds a form that checks every field before anything is sent and
// shows the server's refusal under it. onSubmit gets the values of the
// visible fields (empty optional ones left out) and may return a message
// or a Node to show on success.
export function form({ fields, submit = 'Save', onSubmit, reset = false, testid, cls = '' }) {
  const errArea = h('div', { class: 'form-result', 'aria-live': 'polite' });
  const rows = fields.map((f) => {
    const id = 'f' + (++fieldSeq);
    const input = fieldInput(f, id);
    const err = h('div', { class: 'field-error', id: id + '-err' });
    const label = f.kind === 'checkbox'
      ? h('label', { class: 'check', for: id }, input, ' ', f.label)
      : h('label', { for: id, class: f.required ? 'required' : null }, f.label);
    const row = h('div', { class: 'field field-' + (f.kind || 'text') }, label, f.kind === 'checkbox' ? null : input,
      f.help ? h('small', { class: 'help' }, f.help) : null, err);
    return { f, input, err, row };
  });
  const btn = h('button', { type: 'submit', class: 'btn primary' }, submit);
  const el = h('form', { class: 'form ' + cls, novalidate: true, method: 'post', 'data-testid': testid },
    rows.map((r) => r.row), h('div', { class: 'actions' }, btn), errArea);

  const values = () => {
    const out = {};
    for (const r of rows) {
      if (r.row.hidden) continue;
      out[r.f.name] = fieldValue(r.f, r.input);
    }
    return out;
  };
  const refresh = () => {
    const v = values();
    for (const r of rows) if (r.f.showIf) r.row.hidden = !r.f.showIf(v);
  };
  el.addEventListener('input', refresh);
  el.addEventListener('change', refresh);
  refresh();

  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(errArea);
    const v = values();
    let first = null;
    for (const r of rows) {
      if (r.row.hidden) continue;
      const msg = checkField(r.f, v[r.f.name], v);
      replace(r.err, msg || '');
      r.row.classList.toggle('invalid', !!msg);
      if (msg && !first) first = r;
    }
    if (first) {
      (first.input.querySelector ? first.input.querySelector('input') || first.input : first.input).focus();
      replace(errArea, h('p', { class: 'error-inline', role: 'alert' }, 'Please correct the marked fields; nothing was sent.'));
      return;
    }
    const sendValues = {};
    for (const r of rows) {
      if (r.row.hidden) continue;
      const x = v[r.f.name];
      if (!isEmpty(x) || r.f.sendEmpty) sendValues[r.f.name] = x;
    }
    btn.disabled = true;
    try {
      const msg = await onSubmit(sendValues);
      if (msg) replace(errArea, msg instanceof Node ? msg : h('p', { class: 'ok', role: 'status' }, msg));
      if (reset) el.reset();
      refresh();
    } catch (e) {
      replace(errArea, errorBox(e));
      if (!(e instanceof ApiError || e instanceof PathRefused)) console.error(e);
    } finally {
      // Secrets leave the page once sent, whatever the answer.
      for (const r of rows) if (isSecret(r.f)) r.input.value = '';
      btn.disabled = false;
    }
  });
  el.values = values;
  return el;
}

// confirmTyped asks the operator to type a name before a destructive
// action; it resolves true only when the typed text is exactly the name.
export function confirmTyped({ title, message, name, action = 'Delete' }) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'name to confirm', 'data-testid': 'confirm-input' });
    const ok = h('button', { type: 'submit', class: 'btn danger', disabled: true, 'data-testid': 'confirm-ok' }, action);
    const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel' }, 'Cancel');
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('form', { method: 'dialog' },
        h('h3', { id: 'confirm-title' }, title),
        message ? h('p', null, message) : null,
        h('p', null, 'Type ', h('code', { class: 'confirm-name' }, name), ' to confirm.'),
        input,
        h('div', { class: 'actions' }, cancel, ok)));
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    input.addEventListener('input', () => { ok.disabled = input.value !== name; });
    cancel.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', () => finish(false));
    dlg.querySelector('form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      finish(input.value === name);
    });
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}

// secretOnce shows what the server answers only once (a credential) until
// the operator closes it; then the values are dropped from the page.
export function secretOnce({ title, warning, items = [], downloadLabel, filename, content, type = 'text/plain', onClose }) {
  let data = content;
  const dlBtn = downloadLabel ? button(downloadLabel, () => {
    download(filename, data, type);
    dlBtn.disabled = true;
    replace(dlBtn, downloadLabel + ' (downloaded)');
  }, { kind: 'primary', testid: 'secret-download' }) : null;
  const panel = h('div', { class: 'secret-once', role: 'region', 'aria-label': title },
    h('h3', null, title),
    h('p', { class: 'warn' }, warning || 'Shown once: the appliance does not keep it. Save it now.'),
    items.length ? h('dl', { class: 'facts' }, items.map(([k, v]) => [h('dt', null, k), h('dd', null, h('code', { class: 'secret', 'data-testid': 'secret-' + k.toLowerCase().replace(/\W+/g, '-') }, v))])) : null,
    h('div', { class: 'actions' }, dlBtn, button('Done, forget it', () => {
      data = null;
      panel.remove();
      if (onClose) onClose();
    }, { testid: 'secret-close' })));
  return panel;
}

// pool maps items through fn with at most n requests in flight.
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let i = 0;
  const worker = async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

// settle runs fn and returns its value, or the error as {error}.
export async function settle(fn) {
  try {
    return await fn();
  } catch (e) {
    return { error: e };
  }
}

// mountTabs lets the operator pick among the mounts of one type.
export function mountTabs(list, current, route) {
  if (list.length < 2) return null;
  return h('nav', { class: 'tabs', 'aria-label': 'mounts' }, list.map((m) =>
    h('a', { href: route(m.path), class: m.path === current ? 'current' : '', 'aria-current': m.path === current ? 'page' : null }, m.path + '/')));
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', null, title), ...extra);
}
