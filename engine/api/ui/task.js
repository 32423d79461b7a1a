// A task (its DAG, coloured by state and updated live over the task's event
// stream, its steps and the operator actions) and a step (its attempts,
// handler logs, transitions, error and result, and the actions on it).

import {
  action, api, badge, between, can, enc, errorText, field, h, json, notify, onLeave, put, SETTLED, shortId, table, time, when,
} from './lib.js';
import { dag, setNodeState } from './charts.js';

const FINISHED_TASK = ['complete', 'error', 'cancelled', 'resolved_manually'];
const FINISHED_STEP = ['complete', 'cancelled', 'resolved_manually'];

/** Follows `/v1/tasks/{id}/events` until the task settles: `onEvent(kind,
 *  data)` for each event. `ensure()` reopens it after an action. */
function follow(taskId, onEvent, status) {
  let source = null;
  const close = (state) => {
    if (source) source.close();
    source = null;
    let why = 'the task has finished';
    if (state === 'blocked_by_failures') why = 'the task is blocked by failures and waits for an operator';
    if (!state) why = 'the event stream ended (reload to follow again)';
    status.textContent = `Not following: ${why}.`;
    status.className = 'live off';
  };
  const open = () => {
    if (source) return;
    source = new EventSource(`/v1/tasks/${taskId}/events`);
    status.textContent = 'Live: following state changes.';
    status.className = 'live on';
    const handle = (kind) => (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      onEvent(kind, data);
      if (kind === 'state' && SETTLED.includes(data.state)) close(data.state);
    };
    source.addEventListener('state', handle('state'));
    source.addEventListener('step', handle('step'));
    source.addEventListener('error', () => {
      if (source && source.readyState === EventSource.CLOSED) close();
    });
  };
  onLeave(() => { if (source) source.close(); source = null; });
  return { open, close };
}

/** Calls `fn` once, `ms` after the last of a burst of calls. */
function debounce(ms, fn) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

const stepPath = (taskId, step) => `/v1/tasks/${taskId}/steps/${enc(step)}`;

/** The actions on one step the key may take, for its state. */
function stepActions(taskId, step, taskState, done) {
  if (FINISHED_TASK.includes(taskState) || FINISHED_STEP.includes(step.state)) return [];
  const attrs = { 'data-step': step.name };
  const post = (verb) => () => api(`${stepPath(taskId, step.name)}/${verb}`, { method: 'POST', json: {} });
  return [
    step.state === 'error' ? action('steps:resolve', 'Retry', post('retry'), { done, attrs }) : null,
    action('steps:resolve', 'Resolve', post('resolve'), { done, attrs }),
  ];
}

function stepRow(taskId, task, s, done) {
  const err = errorText(s.last_error);
  return h('tr', { 'data-step': s.name, 'data-state': s.state },
    h('th', { scope: 'row' }, h('a', { href: `#/tasks/${taskId}/steps/${enc(s.name)}` }, s.name)),
    h('td', {}, h('code', {}, s.handler_name)),
    h('td', {}, badge(s.state)),
    h('td', {}, `${s.attempts} / ${s.max_attempts}${s.recoveries ? ` (+${s.recoveries} recovered)` : ''}`),
    h('td', {}, when(s.started_at)),
    h('td', {}, between(s.started_at, s.completed_at)),
    h('td', {}, err ? h('span', { class: 'err' }, err) : '—'),
    can('steps:resolve') ? h('td', {}, h('span', { class: 'actions' }, stepActions(taskId, s, task.state, done))) : null);
}

function taskFacts(t) {
  const dl = h('dl', { class: 'facts' });
  const add = (k, v) => dl.append(h('dt', {}, k), h('dd', {}, v));
  add('id', h('code', {}, t.id));
  add('template', h('a', { href: `#/templates/${enc(t.namespace)}/${enc(t.template_name)}/${enc(t.template_version)}` },
    `${t.namespace}/${t.template_name} v${t.template_version}`));
  add('state', h('span', { id: 'task-state' }, badge(t.state)));
  add('priority', String(t.priority));
  if (t.paused) add('paused', h('span', { id: 'task-paused' }, 'yes: no new step starts until resumed'));
  add('idempotency key', t.idempotency_key ? h('code', {}, t.idempotency_key) : '—');
  // The trace id to look the task up by in a tracing backend (docs/traces.md).
  if (t.traceparent) add('trace', h('code', { id: 'task-trace' }, t.traceparent.split('-')[1] || ''));
  add('created', when(t.created_at));
  add('completed', when(t.completed_at));
  add('took', between(t.created_at, t.completed_at));
  return dl;
}

/** The task page. */
export async function taskPage(root, taskId) {
  let detail = await api(`/v1/tasks/${enc(taskId)}`);
  const status = h('p', { class: 'live', role: 'status' });
  const head = h('div', { class: 'task-head' });
  const graphBox = h('div', { class: 'dag-box', id: 'dag' });
  const stepsBox = h('div');
  const inputBox = h('div');
  root.append(h('h1', {}, 'Task ', shortId(taskId)), status, head,
    h('section', { class: 'card', 'aria-labelledby': 'dag-title' }, h('h2', { id: 'dag-title' }, 'DAG'), graphBox),
    h('section', { class: 'card', 'aria-labelledby': 'steps-title' }, h('h2', { id: 'steps-title' }, 'Steps'), stepsBox),
    h('section', { class: 'card', 'aria-labelledby': 'input-title' }, h('h2', { id: 'input-title' }, 'Input'), inputBox));
  let svg = null;
  const render = () => {
    const t = detail;
    const cancel = FINISHED_TASK.includes(t.state) ? null : action('tasks:cancel', 'Cancel task',
      () => api(`/v1/tasks/${taskId}/cancel`, { method: 'POST', json: {} }), { done: refresh, danger: true });
    const hold = FINISHED_TASK.includes(t.state) ? null : action('tasks:cancel', t.paused ? 'Resume task' : 'Pause task',
      () => api(`/v1/tasks/${taskId}/${t.paused ? 'resume' : 'pause'}`, { method: 'POST' }), { done: refresh });
    head.replaceChildren(taskFacts(t), h('div', { class: 'actions' }, hold, cancel));
    const nodes = t.steps.map((s) => ({ name: s.name, state: s.state }));
    svg = dag(nodes, t.edges, (name) => { location.hash = `#/tasks/${taskId}/steps/${enc(name)}`; });
    graphBox.replaceChildren(svg);
    const columns = ['step', 'handler', 'state', 'attempts', 'started', 'took', 'last error'];
    stepsBox.replaceChildren(table('Steps', can('steps:resolve') ? [...columns, 'actions'] : columns,
      t.steps.map((s) => stepRow(taskId, t, s, refresh))));
    inputBox.replaceChildren(json(t.context));
  };
  async function refresh() {
    detail = await api(`/v1/tasks/${enc(taskId)}`);
    render();
    if (!SETTLED.includes(detail.state)) stream.open();
  }
  const later = debounce(250, () => refresh().catch((e) => notify(`Refreshing the task failed: ${e.message}`, 'error')));
  const stream = follow(taskId, (kind, data) => {
    if (kind === 'step' && svg) setNodeState(svg, data.step, data.state);
    if (kind === 'state') document.getElementById('task-state')?.replaceChildren(badge(data.state));
    later();
  }, status);
  render();
  if (SETTLED.includes(detail.state)) stream.close(detail.state); else stream.open();
}

/** The runs of a step, from its transitions: each move to `in_progress`
 *  (or to `waiting`, a wait step's wait) starts one (an operator's retry
 *  restarts the attempt count, so runs are numbered apart from attempts);
 *  its end, outcome and reason follow. */
function runs(transitions) {
  const list = [];
  let run = null;
  for (const tr of transitions) {
    if (tr.to_state === 'in_progress' || tr.to_state === 'waiting') {
      run = { attempt: tr.attempt, start: tr.created_at, end: null, outcome: null, reason: null, by: tr.processor_id };
      list.push(run);
    } else if (run && !run.outcome) {
      if (tr.from_state === 'in_progress' || tr.from_state === 'waiting') run.end = tr.created_at;
      if (tr.reason) run.reason = tr.reason;
      if (tr.to_state !== 'enqueued_for_orchestration') run.outcome = tr.to_state;
    }
  }
  return list;
}

function completeForm(taskId, step, done) {
  const result = h('textarea', { id: 'complete-result', rows: 4, spellcheck: 'false' }, '{}');
  const reason = h('input', { id: 'complete-reason', type: 'text' });
  const submit = action('steps:resolve', 'Complete with result', async () => {
    let value;
    try { value = JSON.parse(result.value); } catch (e) { throw new Error(`the result is not JSON: ${e.message}`); }
    await api(`${stepPath(taskId, step)}/complete`, { method: 'POST', json: { result: value, reason: reason.value || null } });
  }, { done });
  if (!submit) return null;
  return h('details', { class: 'complete' }, h('summary', {}, 'Complete with a result…'),
    field('Result (JSON)', result), field('Reason (for the audit trail)', reason), submit);
}

/** A time of day with milliseconds (`12:00:01.123`, local). */
const clock = (ts) => `${time(ts).slice(11)}.${String(new Date(ts).getMilliseconds()).padStart(3, '0')}`;

/** A step's handler logs (`GET .../logs`), one block per attempt: a line
 *  per log line, its level as a class (`log-info`, ...). Log text only ever
 *  goes in as text (`h`), never as markup. */
function stepLogs(logs) {
  const attempts = logs.attempts.map((a) => h('div', { class: 'log-attempt', 'data-attempt': a.attempt },
    h('h3', {}, `Attempt ${a.attempt}`, h('small', {}, ` on ${a.worker_id}`,
      a.dropped ? `, ${a.dropped} more line${a.dropped === 1 ? '' : 's'} dropped by the caps` : '')),
    h('pre', { class: 'log' }, a.lines.map((l) => h('div', { class: `log-line log-${l.level}` },
      h('time', { datetime: l.at, title: l.at }, clock(l.at)), ' ',
      h('span', { class: 'log-level' }, l.level.toUpperCase().padEnd(5)), ' ', l.message)))));
  return h('section', { class: 'card', 'aria-labelledby': 'logs-title' }, h('h2', { id: 'logs-title' }, 'Handler logs'),
    attempts.length ? attempts : h('p', { class: 'empty' }, 'Nothing logged (', h('code', {}, 'ctx.log'),
      ', the WIT log import, stdout/stderr or the bindings\' loggers) by any attempt yet.'));
}

/** The step page: one step of a task. */
export async function stepPage(root, taskId, name) {
  const status = h('p', { class: 'live', role: 'status' });
  const body = h('div');
  root.append(h('p', { class: 'crumbs' }, h('a', { href: `#/tasks/${taskId}` }, '← task ', shortId(taskId))),
    h('h1', {}, 'Step ', h('code', {}, name)), status, body);
  const render = async () => {
    const [task, step, transitions, logs] = await Promise.all([
      api(`/v1/tasks/${enc(taskId)}`), api(stepPath(taskId, name)), api(`${stepPath(taskId, name)}/transitions`),
      api(`${stepPath(taskId, name)}/logs`),
    ]);
    const dl = h('dl', { class: 'facts' });
    const add = (k, v) => dl.append(h('dt', {}, k), h('dd', {}, v));
    add('state', badge(step.state));
    add('handler', h('code', {}, step.handler_name));
    add('attempts', `${step.attempts} of ${step.max_attempts}${step.recoveries ? `, ${step.recoveries} recovered from lost workers` : ''}`);
    add('task', h('span', {}, h('a', { href: `#/tasks/${taskId}` }, shortId(taskId)), ' ', badge(task.state)));
    add('started', when(step.started_at));
    add('completed', when(step.completed_at));
    add('next retry', when(step.next_retry_at));
    const parents = task.edges.filter(([, c]) => c === name).map(([p]) => p);
    add('depends on', parents.length ? parents.join(', ') : '— (a root)');
    body.replaceChildren();
    put(body,
      h('section', { class: 'card' }, dl, h('div', { class: 'actions' }, stepActions(taskId, step, task.state, render),
        FINISHED_TASK.includes(task.state) || FINISHED_STEP.includes(step.state) ? null : completeForm(taskId, name, render))),
      h('section', { class: 'card', 'aria-labelledby': 'attempts-title' }, h('h2', { id: 'attempts-title' }, 'Attempts'),
        table('Attempts', ['run', 'attempt', 'started', 'ended', 'took', 'outcome', 'reason', 'by'],
          runs(transitions).map((a, i) => [String(i + 1), String(a.attempt), when(a.start), when(a.end), between(a.start, a.end),
            a.outcome ? badge(a.outcome) : '—', a.reason ? h('span', { class: 'err' }, a.reason) : '—', a.by || '—']),
          'Not started yet.')),
      stepLogs(logs),
      step.last_error ? h('section', { class: 'card' }, h('h2', {}, 'Last error'), json(step.last_error)) : null,
      step.result ? h('section', { class: 'card' }, h('h2', {}, 'Result'), json(step.result)) : null,
      h('section', { class: 'card', 'aria-labelledby': 'transitions-title' }, h('h2', { id: 'transitions-title' }, 'Transitions'),
        table('Transitions', ['at', 'from', 'to', 'event', 'attempt', 'reason', 'by'],
          transitions.map((t) => [when(t.created_at), t.from_state ? badge(t.from_state) : '—', badge(t.to_state),
            t.event, String(t.attempt), t.reason || '—', t.processor_id || '—']))));
    if (SETTLED.includes(task.state)) stream.close(task.state); else stream.open();
  };
  const later = debounce(250, () => render().catch((e) => notify(`Refreshing the step failed: ${e.message}`, 'error')));
  const stream = follow(taskId, (kind, data) => { if (kind === 'state' || data.step === name) later(); }, status);
  await render();
}
