// Small SVG charts (no library): a time-series line chart and a horizontal
// bar chart. Colours come from the stylesheet through series classes.
import { h, s } from './dom.js';

// niceStep rounds a grid step up to 1, 2, 2.5 or 5 times a power of ten.
function niceStep(v) {
  if (!(v > 0)) return 0.25;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p + 1e-12) return m * p;
  return 10 * p;
}

function tickLabel(v, unit) {
  const t = Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toPrecision(2);
  return unit ? t + ' ' + unit : t;
}

// lineChart draws series [{name, cls, points: [[t(ms), v]]}] over the last
// `window` ms, with a legend. Points whose value is not a number are gaps.
export function lineChart({ title, series, unit = '', window = 5 * 60 * 1000, now = Date.now(), height = 180, testid }) {
  const W = 560;
  const H = height;
  const L = 56;
  const R = 10;
  const T = 10;
  const B = 26;
  const t0 = now - window;
  let max = 0;
  for (const se of series) for (const [t, v] of se.points) if (t >= t0 && Number.isFinite(v)) max = Math.max(max, v);
  const ymax = 4 * niceStep(max / 4);
  const x = (t) => L + ((t - t0) / window) * (W - L - R);
  const y = (v) => T + (1 - v / ymax) * (H - T - B);
  const grid = [];
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    grid.push(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid-line' }));
    grid.push(s('text', { x: L - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end' }, tickLabel(v, unit)));
  }
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (window * i) / 5;
    const secs = Math.round((now - t) / 1000);
    grid.push(s('text', { x: x(t), y: H - 8, class: 'tick', 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' }, secs === 0 ? 'now' : `-${secs}s`));
  }
  const lines = series.map((se) => {
    const segs = [];
    let cur = [];
    for (const [t, v] of se.points) {
      if (t < t0) continue;
      if (!Number.isFinite(v)) {
        if (cur.length) segs.push(cur);
        cur = [];
        continue;
      }
      cur.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (cur.length) segs.push(cur);
    return s('g', { class: 'series ' + se.cls },
      segs.map((pts) => pts.length === 1
        ? s('circle', { cx: pts[0].split(',')[0], cy: pts[0].split(',')[1], r: 2.5 })
        : s('polyline', { points: pts.join(' '), fill: 'none' })));
  });
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title },
    s('title', null, title), grid, lines);
  return h('figure', { class: 'chart-box', 'data-testid': testid },
    h('figcaption', null, title),
    svg,
    h('div', { class: 'legend' }, series.map((se) => h('span', { class: 'key ' + se.cls }, h('i', null), se.name))));
}

// barChart draws [{label, value, cls}] as horizontal bars, largest first.
export function barChart({ title, bars, unit = '', max = 10, testid, empty = 'No data yet.' }) {
  const items = bars.filter((b) => b.value > 0).sort((a, b) => b.value - a.value).slice(0, max);
  if (!items.length) return h('figure', { class: 'chart-box', 'data-testid': testid }, h('figcaption', null, title), h('p', { class: 'empty' }, empty));
  const W = 560;
  const row = 22;
  const L = 230;
  const H = items.length * row + 6;
  const top = Math.max(...items.map((b) => b.value));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart bars', role: 'img', 'aria-label': title },
    s('title', null, title),
    items.map((b, i) => {
      const w = Math.max(1, (b.value / top) * (W - L - 70));
      const yy = i * row + 3;
      return s('g', { class: 'bar ' + (b.cls || '') },
        s('title', null, `${b.label}: ${b.value}`),
        s('text', { x: L - 6, y: yy + 14, class: 'tick', 'text-anchor': 'end' }, b.label.length > 38 ? b.label.slice(0, 37) + '…' : b.label),
        s('rect', { x: L, y: yy + 2, width: w.toFixed(1), height: row - 6, rx: 2 }),
        s('text', { x: L + w + 6, y: yy + 14, class: 'tick' }, tickLabel(b.value, unit)));
    }));
  return h('figure', { class: 'chart-box', 'data-testid': testid }, h('figcaption', null, title), svg);
}
