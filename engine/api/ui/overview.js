// The overview: tasks by state, throughput and failures over the last hour
// and live, queue depth and age, workers, recent failures, slowest steps.

import { api, badge, enc, errorText, every, h, seconds, shortId, table, when } from './lib.js';
import { bars, timeSeries } from './charts.js';

const BUCKET_MINUTES = 5;
const BUCKETS = 12;
const LIVE_SAMPLES = 40;
/** Worker counters sampled while the overview is open: `{t, counts: Map}`. */
const samples = [];

const stepLink = (taskId, step) => h('a', { href: `#/tasks/${taskId}/steps/${enc(step)}` }, step);
const taskLink = (taskId) => h('a', { href: `#/tasks/${taskId}` }, shortId(taskId));
const failedTasks = (a) => (a.tasks_by_state.error || 0) + (a.tasks_by_state.blocked_by_failures || 0);

/** The last hour in buckets: `/v1/analytics` counts since each bucket's
 *  start; a bucket's count is the difference to the next one. */
async function lastHour() {
  const now = Date.now();
  const starts = Array.from({ length: BUCKETS }, (_, k) => new Date(now - (BUCKETS - k) * BUCKET_MINUTES * 60e3));
  const sums = await Promise.all(starts.map((t) => api(`/v1/analytics?since=${enc(t.toISOString())}`)));
  const minus = (k, f) => f(sums[k]) - (k + 1 < sums.length ? f(sums[k + 1]) : 0);
  const mid = (t) => new Date(+t + BUCKET_MINUTES * 30e3).toISOString();
  return {
    hour: sums[0],
    steps: starts.map((t, k) => ({ t: mid(t), v: Math.max(0, minus(k, (a) => a.steps_completed)) })),
    failed: starts.map((t, k) => ({ t: mid(t), v: Math.max(0, minus(k, failedTasks)) })),
  };
}

/** A rate with two significant digits below 10 (0.0039, 2.4), whole above. */
const perSecond = (v) => (v >= 10 ? String(Math.round(v)) : String(Number(v.toPrecision(2))));

function tile(label, value, hint) {
  return h('div', { class: 'tile' }, h('div', { class: 'tile-value' }, value), h('div', { class: 'tile-label' }, label),
    hint ? h('div', { class: 'tile-hint' }, hint) : null);
}

/** Steps per second and failed attempts per second between worker samples. */
function liveSeries() {
  const ok = [];
  const bad = [];
  for (let i = 1; i < samples.length; i += 1) {
    const [a, b] = [samples[i - 1], samples[i]];
    const dt = Math.max(0.001, (b.t - a.t) / 1000);
    let s = 0;
    let f = 0;
    for (const [id, [bs, bf]] of b.counts) {
      const before = a.counts.get(id);
      if (!before) continue;
      s += Math.max(0, bs - before[0]);
      f += Math.max(0, bf - before[1]);
    }
    ok.push({ t: new Date(b.t).toISOString(), v: s / dt });
    bad.push({ t: new Date(b.t).toISOString(), v: f / dt });
  }
  return [{ name: 'steps/s', cls: 's-ok', points: ok }, { name: 'failed attempts/s', cls: 's-bad', points: bad }];
}

async function sample(box) {
  const { workers } = await api('/v1/workers');
  samples.push({ t: Date.now(), counts: new Map(workers.map((w) => [w.id, [w.steps_succeeded, w.steps_failed]])) });
  while (samples.length > LIVE_SAMPLES) samples.shift();
  box.replaceChildren(timeSeries('Live: steps per second and failed attempts per second (worker heartbeats)', liveSeries(), { unit: '/s' }));
  return workers;
}

async function fill(parts) {
  const [hist, queues, dlq, workers] = await Promise.all([
    lastHour(), api('/v1/queues'), api('/v1/dlq?limit=500'), api('/v1/workers'),
  ]);
  const { hour } = hist;
  const created = Object.values(hour.tasks_by_state).reduce((a, b) => a + b, 0);
  const stepQueues = queues.queues.filter((q) => q.pool);
  const depth = stepQueues.reduce((a, q) => a + q.queue_length, 0);
  const oldest = Math.max(0, ...stepQueues.map((q) => q.oldest_msg_age_sec || 0));
  const live = workers.workers.filter((w) => w.status === 'live');
  const dead = `${dlq.steps.length}${dlq.next_cursor ? '+' : ''}`;
  parts.tiles.replaceChildren(
    tile('tasks created (last hour)', created),
    tile('steps per second (last hour)', perSecond(hour.steps_per_second), `${hour.steps_completed} steps completed`),
    tile('task latency p50 / p95', `${seconds(hour.task_latency_p50_seconds)} / ${seconds(hour.task_latency_p95_seconds)}`),
    tile('steps queued', depth, `oldest waiting ${seconds(oldest)}`),
    tile('live workers', live.length, `${live.reduce((a, w) => a + w.in_flight, 0)} steps running`),
    tile('dead steps', dead, h('a', { href: '#/queues' }, 'dead letters')));
  parts.history.replaceChildren(timeSeries(`Last hour, per ${BUCKET_MINUTES} minutes: steps completed and tasks failed (by creation time)`, [
    { name: 'steps completed', cls: 's-ok', points: hist.steps },
    { name: 'tasks failed', cls: 's-bad', points: hist.failed },
  ]));
  parts.states.replaceChildren(bars('Tasks created in the last hour, by state',
    Object.entries(hour.tasks_by_state).map(([state, value]) => ({ label: state.replaceAll('_', ' '), value, cls: `st-${state}` }))));
  parts.queues.replaceChildren(table('Queues', ['queue', 'pool', 'depth', 'oldest message', 'newest message'],
    queues.queues.map((q) => [h('code', {}, q.queue_name), q.pool || '(results)', String(q.queue_length),
      seconds(q.oldest_msg_age_sec), seconds(q.newest_msg_age_sec)]), 'No queues yet.'));
  const byRuntime = new Map();
  for (const w of live) {
    const r = byRuntime.get(w.runtime) || { n: 0, running: 0, slots: 0 };
    byRuntime.set(w.runtime, { n: r.n + 1, running: r.running + w.in_flight, slots: r.slots + w.concurrency });
  }
  parts.workers.replaceChildren(table('Live workers by runtime', ['runtime', 'workers', 'steps running / slots'],
    [...byRuntime].map(([rt, r]) => [rt, String(r.n), `${r.running} / ${r.slots}`]), 'No live worker.'));
  const recent = [...dlq.steps].sort((a, b) => new Date(b.failed_at) - new Date(a.failed_at)).slice(0, 8);
  parts.failures.replaceChildren(table('Recent failures', ['failed', 'task', 'step', 'handler', 'error'],
    recent.map((s) => [when(s.failed_at), taskLink(s.task_id), stepLink(s.task_id, s.step), h('code', {}, s.handler),
      h('span', { class: 'err' }, errorText(s.last_error))]), 'No failed steps.'));
  parts.slowest.replaceChildren(table('Slowest step attempts (last hour)', ['task', 'step', 'handler', 'attempt', 'took'],
    hour.slowest_steps.slice(0, 6).map((s) => [taskLink(s.task_id), stepLink(s.task_id, s.step), h('code', {}, s.handler),
      String(s.attempt), seconds(s.duration_seconds)]), 'No step finished in the last hour.'));
}

/** The overview page. */
export async function overview(root) {
  const box = (title, cls) => {
    const inner = h('div', { class: 'box-body' });
    const section = h('section', { class: `card ${cls || ''}`, 'aria-label': title }, h('h2', {}, title), inner);
    return [section, inner];
  };
  const tilesBox = h('section', { class: 'tiles', 'aria-label': 'Key numbers' });
  const [historyBox, history] = box('Throughput and failures, last hour', 'chart-card');
  const [liveBox, liveChart] = box('Live', 'chart-card');
  const [statesBox, states] = box('Tasks by state');
  const [queuesBox, queues] = box('Queues: depth and age');
  const [workersBox, workers] = box('Workers');
  const [failuresBox, failures] = box('Recent failures', 'wide');
  const [slowBox, slowest] = box('Slowest steps', 'wide');
  root.append(h('h1', {}, 'Overview'), tilesBox,
    h('div', { class: 'grid' }, historyBox, liveBox, statesBox, queuesBox, workersBox, failuresBox, slowBox));
  const parts = { tiles: tilesBox, history, states, queues, workers, failures, slowest };
  await Promise.all([fill(parts), sample(liveChart)]);
  every(5000, () => sample(liveChart).catch((e) => console.warn('live sample:', e.message)));
  every(30000, () => fill(parts).catch((e) => console.warn('overview refresh:', e.message)));
}
