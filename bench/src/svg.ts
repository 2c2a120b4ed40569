import type { LatencyHistogram } from './stats.js';

export interface ChartSeries {
  label: string;
  color: string;
  histogram: LatencyHistogram;
  p50: number;
  p99: number;
}

export interface LatencyChart {
  title: string;
  /** Drawn as a red dashed line: the p99 target. */
  targetMs?: number;
  series: ChartSeries[];
  /** Axis captions; the defaults describe commit-to-Kafka latency of messages. */
  xLabel?: string;
  yLabel?: string;
}

const W = 800;
const H = 440;
const M = { left: 64, right: 24, top: 56, bottom: 64 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

/**
 * The latency distribution as a self-contained SVG (no dependencies): share of
 * messages per log-spaced latency bucket, one step line per series, with dashed
 * p50 and dotted p99 markers, so a reader sees the shape and the tail, not only
 * percentiles.
 */
export function renderLatencyChart(chart: LatencyChart): string {
  const occupied = chart.series.flatMap(({ histogram: h }) =>
    h.counts.flatMap((c, i) => (c > 0 ? [h.edgesMs[i]!, h.edgesMs[i + 1]!] : [])),
  );
  if (chart.targetMs !== undefined) occupied.push(chart.targetMs);
  const lo = Math.floor(Math.log10(Math.min(...occupied)));
  const hi = Math.ceil(Math.log10(Math.max(...occupied)));
  const x = (ms: number) => M.left + ((Math.log10(ms) - lo) / (hi - lo)) * PW;
  const shares = chart.series.map(({ histogram: h }) => {
    const total = h.counts.reduce((a, b) => a + b, 0) + h.under + h.over;
    return h.counts.map((c) => (total > 0 ? (100 * c) / total : 0));
  });
  const yMax = niceCeil(Math.max(1, ...shares.flat()));
  const y = (pct: number) => M.top + PH - (pct / yMax) * PH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
  );
  // Grid and axes.
  const yStep = yMax / 5;
  for (let i = 0; i <= 5; i++) {
    const v = i * yStep;
    out.push(line(M.left, y(v), M.left + PW, y(v), '#e5e7eb'), text(M.left - 8, y(v) + 4, `${fmt(v)}%`, 'end'));
  }
  for (let d = lo; d <= hi; d++) {
    const ms = 10 ** d;
    out.push(line(x(ms), M.top, x(ms), M.top + PH, '#d0d7de'), text(x(ms), M.top + PH + 18, `${fmt(ms)} ms`, 'middle'));
    if (d < hi)
      for (let k = 2; k <= 9; k++) out.push(line(x(k * ms), M.top + PH, x(k * ms), M.top + PH + 5, '#8b949e'));
  }
  out.push(
    line(M.left, M.top + PH, M.left + PW, M.top + PH, '#24292f'),
    line(M.left, M.top, M.left, M.top + PH, '#24292f'),
    text(
      M.left + PW / 2,
      H - 20,
      chart.xLabel ?? 'latency from commit (baseline: from send) to readable by a consumer, log scale',
      'middle',
    ),
    `<text transform="translate(16 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel ?? 'share of messages per bucket')}</text>`,
  );
  // Series: step lines over the buckets, lightly filled.
  chart.series.forEach((s, si) => {
    const h = s.histogram;
    const points: string[] = [];
    h.counts.forEach((_, i) => {
      const x0 = h.edgesMs[i]!;
      const x1 = h.edgesMs[i + 1]!;
      if (x1 <= 10 ** lo || x0 >= 10 ** hi) return;
      const yy = y(shares[si]![i]!).toFixed(1);
      points.push(`${x(Math.max(x0, 10 ** lo)).toFixed(1)},${yy}`, `${x(Math.min(x1, 10 ** hi)).toFixed(1)},${yy}`);
    });
    const baseY = y(0).toFixed(1);
    const first = points[0]?.split(',')[0];
    const last = points.at(-1)?.split(',')[0];
    out.push(
      `<polygon points="${first},${baseY} ${points.join(' ')} ${last},${baseY}" fill="${s.color}" fill-opacity="0.15" stroke="none"/>`,
      `<polyline points="${points.join(' ')}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`,
      markerLine(x(s.p50), s.color, '6 4'),
      markerLine(x(s.p99), s.color, '2 3'),
    );
  });
  if (chart.targetMs !== undefined) {
    out.push(
      `<line x1="${x(chart.targetMs).toFixed(1)}" y1="${M.top}" x2="${x(chart.targetMs).toFixed(1)}" y2="${M.top + PH}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="8 4"/>`,
      text(x(chart.targetMs) - 4, M.top + 12, `target p99 ≤ ${fmt(chart.targetMs)} ms`, 'end', '#cf222e'),
    );
  }
  // Legend.
  chart.series.forEach((s, i) => {
    const ly = M.top - 22 + i * 16;
    const lx = M.left + 8;
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="14" height="10" fill="${s.color}" fill-opacity="0.5" stroke="${s.color}"/>`,
      text(lx + 20, ly, `${s.label}: p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms (dashed p50, dotted p99)`, 'start'),
    );
  });
  out.push('</svg>', '');
  return out.join('\n');
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string): string {
  return `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${stroke}" stroke-width="1"/>`;
}

function markerLine(at: number, color: string, dash: string): string {
  return `<line x1="${at.toFixed(1)}" y1="${M.top}" x2="${at.toFixed(1)}" y2="${M.top + PH}" stroke="${color}" stroke-width="1.5" stroke-dasharray="${dash}"/>`;
}

function text(x: number, y: number, content: string, anchor: 'start' | 'middle' | 'end', fill = '#24292f'): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" text-anchor="${anchor}" fill="${fill}">${esc(content)}</text>`;
}

function fmt(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return Number(v.toFixed(1)).toString();
  return Number(v.toPrecision(2)).toString();
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
