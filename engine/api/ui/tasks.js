// The task list: filters by namespace, template, state and creation time;
// search by task id or idempotency key; cursor pages.

import { api, badge, enc, field, h, shortId, table, TASK_STATES, when } from './lib.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FILTERS = ['namespace', 'template', 'state', 'created_after', 'created_before', 'limit'];
/** Pages scanned (500 tasks each) when searching by idempotency key. */
const SEARCH_PAGES = 10;
/** Cursors of the pages before this one, for "Previous". */
let trail = [];
let trailFilters = '';

const toLocalInput = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
};

function row(t) {
  return h('tr', { 'data-task': t.id },
    h('td', {}, h('a', { href: `#/tasks/${t.id}` }, shortId(t.id))),
    h('td', {}, `${t.namespace}/${t.template_name}`, h('small', {}, ` v${t.template_version}`)),
    h('td', {}, badge(t.state)),
    h('td', {}, when(t.created_at)),
    h('td', {}, when(t.completed_at)),
    h('td', {}, t.idempotency_key ? h('code', {}, t.idempotency_key) : '—'));
}

const HEAD = ['task', 'template', 'state', 'created', 'completed', 'idempotency key'];

function filterForm(q) {
  const input = (name, attrs = {}) => h('input', { name, id: `filter-${name}`, value: q.get(name) || '', ...attrs });
  const state = h('select', { name: 'state', id: 'filter-state' }, h('option', { value: '' }, 'any state'),
    TASK_STATES.map((s) => h('option', { value: s, selected: q.get('state') === s }, s.replaceAll('_', ' '))));
  const after = input('created_after', { type: 'datetime-local', value: toLocalInput(q.get('created_after')) });
  const before = input('created_before', { type: 'datetime-local', value: toLocalInput(q.get('created_before')) });
  const limit = h('select', { name: 'limit', id: 'filter-limit' },
    ['25', '50', '100', '500'].map((n) => h('option', { value: n, selected: (q.get('limit') || '50') === n }, n)));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter tasks' },
    field('Namespace', input('namespace', { autocomplete: 'off' })),
    field('Template name', input('template', { autocomplete: 'off' })),
    field('State', state),
    field('Created after', after),
    field('Created before', before),
    field('Per page', limit),
    h('div', { class: 'field buttons' }, h('button', { type: 'submit' }, 'Apply'),
      h('a', { href: '#/tasks', class: 'button secondary' }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (!v) continue;
      next.set(k, k.startsWith('created_') ? new Date(v).toISOString() : v);
    }
    location.hash = `#/tasks?${next}`;
  });
  return form;
}

function searchForm(results) {
  const q = h('input', { type: 'search', id: 'task-search', name: 'q', placeholder: 'a task id, or an idempotency key', autocomplete: 'off' });
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Find a task' },
    field('Find a task by id or idempotency key', q), h('button', { type: 'submit' }, 'Find'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = q.value.trim();
    if (!text) return;
    results.replaceChildren(h('p', { role: 'status' }, 'Searching…'));
    if (UUID.test(text)) {
      try {
        await api(`/v1/tasks/${enc(text)}`);
        location.hash = `#/tasks/${text}`;
      } catch (err) {
        results.replaceChildren(h('p', { role: 'status' }, err.status === 404 ? `No task has the id ${text}.` : err.message));
      }
      return;
    }
    const found = [];
    let cursor = null;
    let pages = 0;
    do {
      const page = await api(`/v1/tasks?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
      found.push(...page.tasks.filter((t) => t.idempotency_key === text));
      cursor = page.next_cursor;
      pages += 1;
    } while (cursor && pages < SEARCH_PAGES);
    const scope = cursor ? ` among the newest ${pages * 500} tasks` : '';
    results.replaceChildren(h('h2', {}, `Tasks with idempotency key “${text}”${scope}`),
      table('Search results', HEAD, found.map(row), `No task has that idempotency key${scope}.`));
  });
  return form;
}

/** The task list page; `q` holds the filters and the page's cursor. */
export async function taskList(root, q) {
  const filters = new URLSearchParams();
  for (const k of FILTERS) if (q.get(k)) filters.set(k, q.get(k));
  if (String(filters) !== trailFilters) { trail = []; trailFilters = String(filters); }
  const results = h('div', { class: 'search-results', 'aria-live': 'polite' });
  root.append(h('h1', {}, 'Tasks'), h('div', { class: 'card' }, searchForm(results), results), filterForm(q));
  const cursor = q.get('cursor');
  const query = new URLSearchParams(filters);
  if (cursor) query.set('cursor', cursor);
  const page = await api(`/v1/tasks?${query}`);
  const go = (c) => {
    const next = new URLSearchParams(filters);
    if (c) next.set('cursor', c);
    location.hash = `#/tasks?${next}`;
  };
  const prev = h('button', { type: 'button', class: 'secondary', disabled: !cursor, onclick: () => go(trail.pop()) }, '← Newer');
  const next = h('button', { type: 'button', class: 'secondary', disabled: !page.next_cursor,
    onclick: () => { trail.push(cursor); go(page.next_cursor); } }, 'Older →');
  root.append(
    h('p', { class: 'count', role: 'status' }, `${page.tasks.length} task${page.tasks.length === 1 ? '' : 's'} on this page${cursor ? ` (page ${trail.length + 1})` : ''}`),
    table('Tasks', HEAD, page.tasks.map(row), 'No task matches these filters.'),
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, next));
}
