// Templates (versions, DAG, YAML, new tasks), WASM components (list,
// upload), queues and dead letters, workers.

import {
  action, api, badge, bytes, can, enc, errorText, field, h, notify, put, shortId, table, when, yaml,
} from './lib.js';
import { dag } from './charts.js';

const reload = () => window.dispatchEvent(new HashChangeEvent('hashchange'));

/** The templates page: every registered version; registering one. */
export async function templates(root) {
  const { templates: list } = await api('/v1/templates');
  const groups = new Map();
  for (const t of list) {
    const k = `${t.namespace}/${t.name}`;
    groups.set(k, [...(groups.get(k) || []), t]);
  }
  root.append(h('h1', {}, 'Templates'),
    table('Templates', ['namespace', 'name', 'versions (newest first)', 'registered'], [...groups.values()].map((versions) => [
      versions[0].namespace, versions[0].name,
      h('span', { class: 'versions' }, versions.map((v) => h('a', { href: `#/templates/${enc(v.namespace)}/${enc(v.name)}/${enc(v.version)}` }, v.version))),
      when(versions[0].created_at)]), 'No template is registered.'));
  if (can('templates:write')) {
    const text = h('textarea', { id: 'template-yaml', rows: 10, spellcheck: 'false', placeholder: 'namespace: …\nname: …\nversion: 1.0.0\nsteps: …' });
    const register = action('templates:write', 'Register template', async () => {
      const accepted = await api('/v1/templates', { method: 'POST', body: text.value, type: 'application/yaml' });
      const [ns, name, version] = accepted.key.split('/');
      location.hash = `#/templates/${enc(ns)}/${enc(name)}/${enc(version)}`;
    });
    root.append(h('section', { class: 'card' }, h('h2', {}, 'Register a template'), field('Template (YAML)', text), register));
  }
}

function createTaskForm(t) {
  const context = h('textarea', { id: 'task-context', rows: 6, spellcheck: 'false' }, '{}');
  const key = h('input', { id: 'task-idempotency-key', type: 'text', autocomplete: 'off' });
  const priority = h('input', { id: 'task-priority', type: 'number', value: 0, step: 1 });
  const create = action('tasks:create', 'Create task', async () => {
    let input;
    try { input = JSON.parse(context.value || '{}'); } catch (e) { throw new Error(`the input is not JSON: ${e.message}`); }
    const created = await api('/v1/tasks', { method: 'POST', json: {
      namespace: t.namespace, name: t.name, version: String(t.version), context: input,
      priority: Number(priority.value || 0), idempotency_key: key.value.trim() || null,
    } });
    location.hash = `#/tasks/${created.task_id}`;
  });
  if (!create) return null;
  return h('section', { class: 'card', 'aria-labelledby': 'new-task-title' }, h('h2', { id: 'new-task-title' }, 'New task'),
    field('Input (JSON)', context, t.input_schema ? 'Checked against the template\'s input schema.' : null),
    h('div', { class: 'row' }, field('Idempotency key (optional)', key), field('Priority', priority)), create);
}

/** One template version: its DAG, steps, YAML, and a form for a new task. */
export async function templatePage(root, ns, name, version) {
  const t = await api(`/v1/templates/${enc(ns)}/${enc(name)}/${enc(version)}`);
  const edges = t.steps.flatMap((s) => (s.depends_on || []).map((p) => [p, s.name]));
  const nodes = t.steps.map((s) => ({ name: s.name, sub: s.handler.name }));
  put(root, h('h1', {}, `${t.namespace}/${t.name} `, h('small', {}, `v${t.version}`)),
    t.description ? h('p', {}, t.description) : null,
    h('section', { class: 'card', 'aria-labelledby': 'tdag' }, h('h2', { id: 'tdag' }, 'DAG'), h('div', { class: 'dag-box' }, dag(nodes, edges))),
    h('section', { class: 'card', 'aria-labelledby': 'tsteps' }, h('h2', { id: 'tsteps' }, 'Steps'),
      table('Steps', ['step', 'handler', 'depends on', 'attempts', 'timeout', 'pool'], t.steps.map((s) => [
        s.name, h('code', {}, s.handler.version ? `${s.handler.name}@${s.handler.version}` : s.handler.name),
        (s.depends_on || []).join(', ') || '—', String(s.retry?.max_attempts ?? '—'), `${s.timeout_seconds} s`,
        s.pool || t.pool || t.namespace]))),
    createTaskForm(t),
    h('section', { class: 'card', 'aria-labelledby': 'tyaml' }, h('h2', { id: 'tyaml' }, 'YAML'), h('pre', { class: 'yaml' }, yaml(t))));
}

/** The WASM components page: every uploaded version; upload and delete. */
export async function components(root) {
  const { components: list } = await api('/v1/components');
  root.append(h('h1', {}, 'WASM components'),
    table('Components', ['name', 'version', 'size', 'sha256', 'contract', 'uploaded', ''], list.map((c) => [
      h('code', {}, c.name), c.version, bytes(c.size_bytes), h('code', { title: c.sha256 }, `${c.sha256.slice(0, 16)}…`),
      c.contract_version, when(c.uploaded_at),
      action('components:write', 'Delete', () => api(`/v1/components/${enc(c.name)}/${enc(c.version)}`, { method: 'DELETE' }),
        { done: reload, danger: true, attrs: { 'aria-label': `Delete ${c.name}@${c.version}` } })]), 'No component is uploaded.'));
  if (!can('components:write')) return;
  const name = h('input', { id: 'component-name', required: true, autocomplete: 'off' });
  const version = h('input', { id: 'component-version', required: true, placeholder: '1.0.0', autocomplete: 'off' });
  const file = h('input', { id: 'component-file', type: 'file', accept: '.wasm,application/wasm', required: true });
  const upload = action('components:write', 'Upload', async () => {
    if (!file.files.length) throw new Error('choose a .wasm file');
    const done = await api(`/v1/components/${enc(name.value.trim())}/${enc(version.value.trim())}`,
      { method: 'PUT', body: await file.files[0].arrayBuffer(), type: 'application/wasm' });
    notify(`${done.component.name}@${done.component.version}: ${done.created ? 'stored' : 'already stored'} (${done.imports.length} imports)`);
  }, { done: reload });
  root.append(h('section', { class: 'card' }, h('h2', {}, 'Upload a component'),
    h('div', { class: 'row' }, field('Name', name, 'as a step\'s handler.name names it'), field('Version', version), field('File', file)), upload));
}

async function showArchive(box, queue) {
  const page = await api(`/v1/queues/${enc(queue)}/archive?limit=100`);
  box.replaceChildren(h('h3', {}, `Archived messages of ${queue}`),
    table(`Archive of ${queue}`, ['message', 'reads', 'enqueued', 'archived', 'body', ''], page.messages.map((m) => [
      String(m.msg_id), String(m.read_ct), when(m.enqueued_at), when(m.archived_at), h('code', { class: 'clip' }, JSON.stringify(m.message)),
      action('admin', 'Requeue', () => api(`/v1/queues/${enc(queue)}/archive/${m.msg_id}/requeue`, { method: 'POST' }),
        { done: () => showArchive(box, queue) })]), 'The archive is empty.'));
}

/** Queues (depth and age, their archives) and the dead-letter queue of steps. */
export async function queues(root) {
  const [{ queues: list }, dlq] = await Promise.all([api('/v1/queues'), api('/v1/dlq?limit=100')]);
  const archive = h('div', { class: 'archive', 'aria-live': 'polite' });
  root.append(h('h1', {}, 'Queues and dead letters'),
    h('section', { class: 'card', 'aria-labelledby': 'q-title' }, h('h2', { id: 'q-title' }, 'Queues'),
      table('Queues', ['queue', 'pool', 'depth', 'oldest', 'newest', 'sent in all', ''], list.map((q) => [
        h('code', {}, q.queue_name), q.pool || '(results)', String(q.queue_length),
        q.oldest_msg_age_sec === null ? '—' : `${q.oldest_msg_age_sec} s`, q.newest_msg_age_sec === null ? '—' : `${q.newest_msg_age_sec} s`,
        String(q.total_messages),
        h('button', { type: 'button', class: 'secondary', onclick: () => showArchive(archive, q.queue_name).catch((e) => notify(e.message, 'error')) }, 'Archive')])),
      archive),
    h('section', { class: 'card', 'aria-labelledby': 'dlq-title' }, h('h2', { id: 'dlq-title' }, 'Dead steps'),
      h('p', {}, 'Steps that ended in error, until an operator retries, resolves, completes or discards them.'),
      table('Dead steps', ['failed', 'task', 'step', 'handler', 'attempts', 'error', 'actions'], dlq.steps.map((s) => [
        when(s.failed_at), h('a', { href: `#/tasks/${s.task_id}` }, shortId(s.task_id)),
        h('a', { href: `#/tasks/${s.task_id}/steps/${enc(s.step)}` }, s.step), h('code', {}, s.handler),
        `${s.attempts} / ${s.max_attempts}`, h('span', { class: 'err' }, errorText(s.last_error)),
        h('span', { class: 'actions' },
          action('steps:resolve', 'Retry', () => api(`/v1/tasks/${s.task_id}/steps/${s.step_id}/retry`, { method: 'POST', json: {} }), { done: reload, attrs: { 'data-step': s.step } }),
          action('steps:resolve', 'Discard', () => api(`/v1/dlq/${s.step_id}/discard`, { method: 'POST', json: {} }), { done: reload, danger: true, attrs: { 'data-step': s.step } }))]),
      'No dead step.'), dlq.next_cursor ? h('p', {}, 'Showing the oldest 100.') : null));
}

/** The worker registry. */
export async function workers(root, q) {
  const all = q.get('all') === '1';
  const { workers: list } = await api(`/v1/workers${all ? '?all=true' : ''}`);
  const toggle = h('input', { type: 'checkbox', id: 'workers-all', checked: all,
    onchange: (e) => { location.hash = e.target.checked ? '#/workers?all=1' : '#/workers'; } });
  root.append(h('h1', {}, 'Workers'),
    h('p', {}, h('label', { for: 'workers-all', class: 'check' }, toggle, ' Include stopped and gone workers (kept a day)')),
    table('Workers', ['status', 'worker', 'runtime', 'pools', 'handlers', 'running / slots', 'succeeded', 'failed', 'heartbeat', 'started'],
      list.map((w) => [badge(w.status), h('code', {}, `${w.host}:${w.pid}`), `${w.runtime} ${w.runtime_version}`,
        w.pools.join(', '), h('span', { title: w.handlers.join(', ') }, `${w.handlers.length}${w.runs_components ? ' + components' : ''}`),
        `${w.in_flight} / ${w.concurrency}`, String(w.steps_succeeded), String(w.steps_failed), when(w.last_heartbeat_at), when(w.started_at)]),
      all ? 'No worker has registered.' : 'No live worker.'));
}
