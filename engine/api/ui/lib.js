// What every page shares: building elements, the API client, the session,
// the page's lifetime (timers, streams), formatting, notices.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An element: `h('a', {href, class}, ...children)`; `svg:` names SVG elements.
 *  Attributes `on<event>` add listeners; text is always set as text. */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Appends `kids` to `el`, leaving out null, undefined and false. */
export function put(el, ...kids) {
  el.append(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

/** An API error: the HTTP status and the API's error body. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Who is signed in: `{signed_in, auth_enabled, name, permissions, namespaces}`. */
export const session = { me: { signed_in: false, permissions: [] }, onExpired: () => {} };

/** True when the session's key holds `permission` (or `admin`). */
export function can(permission) {
  const p = session.me.permissions || [];
  return p.includes('admin') || p.includes(permission);
}

/** Calls the API on this origin with the session cookie. `json` sends a JSON
 *  body, `body` raw bytes of `type`. Resolves to the parsed body. */
export async function api(path, { method = 'GET', json, body, type } = {}) {
  const headers = { 'X-Tasker-UI': '1', Accept: 'application/json' };
  let payload;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (body !== undefined) {
    headers['Content-Type'] = type || 'application/octet-stream';
    payload = body;
  }
  const res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!res.ok) {
    if (res.status === 401) session.onExpired();
    throw new ApiError(res.status, data);
  }
  return data;
}

/** Path segment, encoded. */
export const enc = encodeURIComponent;

// ------------------------------------------------------------ page lifetime

const leaving = [];

/** Runs `fn` when the page is left (timers, streams). */
export function onLeave(fn) { leaving.push(fn); }

/** Calls every `onLeave` of the page being left. */
export function leavePage() {
  while (leaving.length) {
    try { leaving.pop()(); } catch (e) { console.warn('leaving a page:', e); }
  }
}

/** Calls `fn` every `ms` until the page is left. */
export function every(ms, fn) {
  const id = setInterval(fn, ms);
  onLeave(() => clearInterval(id));
}

// ------------------------------------------------------------ formatting

const pad = (n) => String(n).padStart(2, '0');

/** A time as `YYYY-MM-DD HH:MM:SS` (local), or a dash. */
export function time(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A `<time>` element showing `ts`. */
export const when = (ts) => (ts ? h('time', { datetime: ts, title: ts }, time(ts)) : '—');

/** Seconds as a short duration (`850 ms`, `12.4 s`, `3 min 5 s`). */
export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** The duration between two times, or a dash. */
export const between = (a, b) => (a && b ? seconds((new Date(b) - new Date(a)) / 1000) : '—');

/** Bytes as `12.3 KiB`. */
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** The first block of a UUID, for tables (the full id is the title). */
export const shortId = (id) => h('code', { title: id }, String(id).slice(0, 8));

/** A state as a coloured badge. */
export const badge = (state) => h('span', { class: `badge st-${state}`, 'data-state': state }, state.replaceAll('_', ' '));

/** The message of an error value (`{kind, message}` or anything). */
export function errorText(err) {
  if (!err) return '';
  if (typeof err === 'string') return err;
  return err.message ? `${err.kind ? err.kind + ': ' : ''}${err.message}` : JSON.stringify(err);
}

/** A value as readable JSON in a `<pre>`. */
export const json = (v) => h('pre', { class: 'json' }, JSON.stringify(v, null, 2));

/** A value as YAML (for templates: mappings, lists, scalars). */
export function yaml(v, indent = '') {
  const scalar = (x) => {
    if (x === null) return 'null';
    if (typeof x !== 'string') return String(x);
    return /^[\w./@-][\w ./@:-]*$/.test(x) && !/^(true|false|null|yes|no|[\d.]+)$/i.test(x) && !x.endsWith(' ')
      ? x : JSON.stringify(x);
  };
  const isBlock = (x) => x && typeof x === 'object' && Object.keys(x).length > 0;
  if (Array.isArray(v)) {
    if (!v.length) return '[]';
    return v.map((x) => {
      if (!isBlock(x)) return `${indent}- ${scalar(x)}`;
      const inner = yaml(x, indent + '  ');
      return `${indent}- ${inner.slice(indent.length + 2)}`;
    }).join('\n');
  }
  if (v && typeof v === 'object') {
    if (!Object.keys(v).length) return '{}';
    return Object.entries(v).map(([k, x]) => (isBlock(x)
      ? `${indent}${scalar(k)}:\n${yaml(x, indent + '  ')}`
      : `${indent}${scalar(k)}: ${Array.isArray(x) ? '[]' : (x && typeof x === 'object' ? '{}' : scalar(x))}`)).join('\n');
  }
  return indent + scalar(v);
}

// ------------------------------------------------------------ notices and actions

/** Shows a short notice (`ok` or `error`) in the live region. */
export function notify(message, kind = 'ok') {
  const box = document.getElementById('notice');
  box.className = `notice ${kind}`;
  box.textContent = message;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.textContent = ''; box.className = 'notice'; }, 4000);
}

/** A button for an action the key may take (else nothing): runs `run`,
 *  reports the outcome, then calls `done`. `data-action` marks it. */
export function action(permission, label, run, { done, attrs, danger } = {}) {
  if (!can(permission)) return null;
  const button = h('button', { type: 'button', class: danger ? 'act danger' : 'act', 'data-action': label.toLowerCase().split(' ')[0], ...attrs }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await run();
      notify(`${label}: done`);
      if (done) await done();
    } catch (e) {
      notify(`${label} failed: ${e.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}

/** A table with a header row; rows are arrays of cells. */
export function table(caption, headers, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => h('td', {}, c))))))));
}

/** States after which a task changes no more (the event stream ends). */
export const SETTLED = ['complete', 'error', 'cancelled', 'resolved_manually', 'blocked_by_failures'];
/** Every task state, for filters. */
export const TASK_STATES = ['pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
  'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures', 'complete', 'error', 'cancelled', 'resolved_manually'];
