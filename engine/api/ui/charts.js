// Inline SVG drawings: horizontal bars, time series, and a DAG by levels.

import { h } from './lib.js';

const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1));

/** Horizontal bars, one per `{label, value, cls}`. */
export function bars(title, items) {
  const rowH = 26;
  const labelW = 170;
  const width = 520;
  const max = Math.max(1, ...items.map((i) => i.value));
  const height = Math.max(1, items.length) * rowH + 8;
  const summary = items.map((i) => `${i.label} ${i.value}`).join(', ') || 'none';
  const svg = h('svg:svg', { class: 'chart bars', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${title}: ${summary}` },
    h('svg:title', {}, title));
  items.forEach((item, n) => {
    const y = n * rowH + 4;
    const w = ((width - labelW - 60) * item.value) / max;
    svg.append(
      h('svg:text', { x: labelW - 8, y: y + 16, class: 'label', 'text-anchor': 'end' }, item.label),
      h('svg:rect', { x: labelW, y: y + 3, width: Math.max(1, w), height: rowH - 8, rx: 3, class: `bar ${item.cls || ''}` }),
      h('svg:text', { x: labelW + w + 6, y: y + 16, class: 'value' }, fmt(item.value)));
  });
  if (!items.length) svg.append(h('svg:text', { x: 8, y: 20, class: 'label' }, 'no data'));
  return svg;
}

/** Time series: `series` are `{name, cls, points: [{t, v}]}` sharing their
 *  times; drawn as lines with dots over a zero-based axis. */
export function timeSeries(title, series, { unit = '' } = {}) {
  const width = 560;
  const height = 200;
  const pad = { l: 46, r: 12, t: 12, b: 34 };
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => +new Date(p.t));
  const t0 = Math.min(...ts);
  const t1 = Math.max(...ts);
  const vmax = Math.max(1e-9, ...all.map((p) => p.v));
  const x = (t) => pad.l + (t1 > t0 ? ((+new Date(t) - t0) / (t1 - t0)) : 0.5) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  const summary = series.map((s) => `${s.name}: ${s.points.map((p) => fmt(p.v)).join(' ')}`).join('; ');
  const svg = h('svg:svg', { class: 'chart series', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${title}. ${summary || 'no data yet'}` },
    h('svg:title', {}, title),
    h('svg:line', { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, class: 'axis' }),
    h('svg:line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, class: 'axis' }),
    h('svg:text', { x: pad.l - 6, y: pad.t + 10, class: 'tick', 'text-anchor': 'end' }, fmt(vmax)),
    h('svg:text', { x: pad.l - 6, y: height - pad.b, class: 'tick', 'text-anchor': 'end' }, '0'));
  if (!all.length) {
    svg.append(h('svg:text', { x: width / 2, y: height / 2, class: 'label', 'text-anchor': 'middle' }, 'collecting…'));
    return svg;
  }
  const clock = (t) => new Date(t).toTimeString().slice(0, 5);
  svg.append(
    h('svg:text', { x: pad.l, y: height - 10, class: 'tick' }, clock(t0)),
    h('svg:text', { x: width - pad.r, y: height - 10, class: 'tick', 'text-anchor': 'end' }, clock(t1)));
  series.forEach((s, n) => {
    const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    svg.append(h('svg:polyline', { points: pts, class: `line ${s.cls}` }));
    for (const p of s.points) {
      svg.append(h('svg:circle', { cx: x(p.t), cy: y(p.v), r: 3, class: `dot ${s.cls}` },
        h('svg:title', {}, `${s.name} at ${clock(p.t)}: ${fmt(p.v)}${unit}`)));
    }
    svg.append(
      h('svg:rect', { x: pad.l + 8 + n * 170, y: pad.t, width: 10, height: 10, class: `key ${s.cls}` }),
      h('svg:text', { x: pad.l + 22 + n * 170, y: pad.t + 9, class: 'tick' }, s.name));
  });
  return svg;
}

/** Each step's level: roots 0, else one more than its deepest parent. */
export function levels(names, edges) {
  const parents = new Map(names.map((n) => [n, []]));
  for (const [p, c] of edges) if (parents.has(c)) parents.get(c).push(p);
  const level = new Map();
  const visit = (n, path) => {
    if (level.has(n)) return level.get(n);
    if (path.has(n)) return 0;
    path.add(n);
    const l = Math.max(-1, ...parents.get(n).map((p) => (parents.has(p) ? visit(p, path) : -1))) + 1;
    level.set(n, l);
    return l;
  };
  names.forEach((n) => visit(n, new Set()));
  return level;
}

const NODE_W = 160;
const NODE_H = 48;
const GAP_X = 22;
const GAP_Y = 52;

/** The DAG of `nodes` (`{name, state}`) and `edges` (`[parent, child]`), one
 *  row per level. `open(name)` is called on click or Enter. */
export function dag(nodes, edges, open) {
  const level = levels(nodes.map((n) => n.name), edges);
  const rows = [];
  for (const n of nodes) (rows[level.get(n.name)] ||= []).push(n);
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = widest * (NODE_W + GAP_X) + GAP_X;
  const height = rows.length * (NODE_H + GAP_Y) - GAP_Y + 28;
  const at = new Map();
  rows.forEach((row, l) => {
    const left = (width - row.length * (NODE_W + GAP_X) + GAP_X) / 2;
    row.forEach((n, i) => at.set(n.name, { x: left + i * (NODE_W + GAP_X), y: 14 + l * (NODE_H + GAP_Y) }));
  });
  const svg = h('svg:svg', { class: 'dag', viewBox: `0 0 ${width} ${height}`, width, role: 'group', 'aria-label': `DAG of ${nodes.length} steps in ${rows.length} levels` },
    h('svg:defs', {}, h('svg:marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      h('svg:path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))));
  for (const [p, c] of edges) {
    const a = at.get(p);
    const b = at.get(c);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W / 2;
    const y1 = a.y + NODE_H;
    const x2 = b.x + NODE_W / 2;
    const y2 = b.y - 2;
    const my = (y1 + y2) / 2;
    svg.append(h('svg:path', { d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, class: 'edge', 'marker-end': 'url(#arrow)', 'data-edge': `${p}>${c}` }));
  }
  for (const n of nodes) {
    const { x, y } = at.get(n.name);
    const label = n.name.length > 20 ? `${n.name.slice(0, 19)}…` : n.name;
    const g = h('svg:g', { class: `node st-${n.state || 'none'}`, 'data-step': n.name, 'data-state': n.state || '', transform: `translate(${x},${y})` },
      h('svg:title', {}, n.name),
      h('svg:rect', { width: NODE_W, height: NODE_H, rx: 7 }),
      h('svg:text', { x: NODE_W / 2, y: 20, class: 'name', 'text-anchor': 'middle' }, label),
      h('svg:text', { x: NODE_W / 2, y: 38, class: 'state', 'text-anchor': 'middle' }, (n.state || n.sub || '').replaceAll('_', ' ')));
    if (open) {
      g.setAttribute('tabindex', '0');
      g.setAttribute('role', 'link');
      g.addEventListener('click', () => open(n.name));
      g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(n.name); } });
    }
    setLabel(g, n.name, n.state);
    svg.append(g);
  }
  return svg;
}

function setLabel(g, name, state) {
  g.setAttribute('aria-label', state ? `step ${name}: ${state.replaceAll('_', ' ')}` : `step ${name}`);
}

/** Shows `state` on the node of step `name` in `svg`; false when no such node. */
export function setNodeState(svg, name, state) {
  const g = [...svg.querySelectorAll('g.node')].find((n) => n.dataset.step === name);
  if (!g) return false;
  if (g.dataset.state === state) return true;
  g.setAttribute('class', `node st-${state}`);
  g.dataset.state = state;
  g.querySelector('text.state').textContent = state.replaceAll('_', ' ');
  setLabel(g, name, state);
  return true;
}
