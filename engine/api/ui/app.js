// The dashboard's shell: sign-in, navigation, and the hash router
// (`#/tasks/<id>`, ...). Every page is a function rendering into <main>.

import { api, h, leavePage, notify, session } from './lib.js';
import { overview } from './overview.js';
import { taskList } from './tasks.js';
import { stepPage, taskPage } from './task.js';
import { components, queues, templatePage, templates, workers } from './catalog.js';

const NAV = [
  ['#/', 'Overview'],
  ['#/tasks', 'Tasks'],
  ['#/templates', 'Templates'],
  ['#/components', 'Components'],
  ['#/queues', 'Queues & dead letters'],
  ['#/workers', 'Workers'],
];

/** Routes: a pattern over the hash path and the page it shows. */
const ROUTES = [
  [/^\/?$/, () => overview],
  [/^\/tasks$/, () => taskList],
  [/^\/tasks\/([^/]+)$/, (m) => (root, q) => taskPage(root, m[1], q)],
  [/^\/tasks\/([^/]+)\/steps\/([^/]+)$/, (m) => (root) => stepPage(root, m[1], decodeURIComponent(m[2]))],
  [/^\/templates$/, () => templates],
  [/^\/templates\/([^/]+)\/([^/]+)\/([^/]+)$/, (m) => (root) => templatePage(root, ...m.slice(1, 4).map(decodeURIComponent))],
  [/^\/components$/, () => components],
  [/^\/queues$/, () => queues],
  [/^\/workers$/, () => workers],
];

const main = () => document.getElementById('main');

function renderNav(path) {
  const nav = document.getElementById('nav');
  nav.replaceChildren(...(session.me.signed_in ? NAV.map(([href, label]) => {
    const here = href === '#/' ? path === '/' || path === '' : path.startsWith(href.slice(1));
    return h('a', { href, 'aria-current': here ? 'page' : null }, label);
  }) : []));
  const who = document.getElementById('who');
  who.replaceChildren();
  if (session.me.signed_in) {
    who.append(h('span', { class: 'key', title: (session.me.permissions || []).join(', ') },
      session.me.auth_enabled ? `Key: ${session.me.name}` : 'Authentication off'));
    if (session.me.auth_enabled) {
      who.append(h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: signOut }, 'Sign out'));
    }
  }
}

async function route() {
  leavePage();
  route.seq = (route.seq || 0) + 1;
  const seq = route.seq;
  const hash = location.hash || '#/';
  const [path, query] = hash.replace(/^#/, '').split('?');
  renderNav(path);
  // Each visit renders into its own element: a page still loading when the
  // operator moves on fills a detached one.
  const root = h('div', { class: 'page' });
  const box = main();
  box.replaceChildren(root);
  box.setAttribute('aria-busy', 'true');
  delete box.dataset.rendered;
  const where = path || '/';
  const found = ROUTES.find(([re]) => re.test(where));
  try {
    if (!session.me.signed_in) signInForm(root);
    else if (!found) root.append(h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/' }, 'Go to the overview.')));
    else await found[1](where.match(found[0]))(root, new URLSearchParams(query || ''));
  } catch (e) {
    root.append(h('p', { class: 'error', role: 'alert' }, `Could not load this page: ${e.message}`));
  }
  if (seq !== route.seq) return;
  box.removeAttribute('aria-busy');
  box.dataset.rendered = hash;
  const heading = root.querySelector('h1');
  if (heading && route.moved && session.me.signed_in) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: true }); }
  route.moved = true;
}

function signInForm(root) {
  const key = h('input', { type: 'password', id: 'api-key', name: 'key', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const problem = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' });
  const form = h('form', { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in'),
    h('p', {}, 'Sign in with an API key. It is kept in a cookie this page cannot read, and every action is checked against its permissions.'),
    h('div', { class: 'field' }, h('label', { for: 'api-key' }, 'API key'), key),
    problem,
    h('button', { type: 'submit', id: 'sign-in' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    problem.textContent = '';
    try {
      session.me = await api('/ui/session', { method: 'POST', json: { key: key.value } });
      key.value = '';
      await route();
    } catch (err) {
      problem.textContent = err.status === 401 ? 'That key is not valid (unknown, mistyped or revoked).' : err.message;
      key.focus();
    }
  });
  root.append(form);
  key.focus();
}

async function signOut() {
  try {
    session.me = await api('/ui/session', { method: 'DELETE' });
  } catch (e) {
    notify(`Sign-out failed: ${e.message}`, 'error');
    return;
  }
  location.hash = '#/';
  await route();
}

async function start() {
  session.onExpired = () => {
    if (!session.me.signed_in || !session.me.auth_enabled) return;
    session.me = { signed_in: false, permissions: [] };
    notify('Your session ended: sign in again.', 'error');
    route();
  };
  try {
    session.me = await api('/ui/session');
  } catch (e) {
    main().append(h('p', { class: 'error', role: 'alert' }, `The server did not answer: ${e.message}`));
    return;
  }
  document.querySelector('.skip').addEventListener('click', (e) => { e.preventDefault(); main().focus(); });
  window.addEventListener('hashchange', route);
  await route();
}

start();
