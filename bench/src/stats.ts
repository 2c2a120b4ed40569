/** Small, dependency-free statistics for benchmark samples. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of an ascending array: always a real sample. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export function summariseLatencies(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

/**
 * A log-bucketed histogram of latencies in ms: 20 buckets per decade from 0.1 ms
 * to 100 s. Small enough to commit with the results, fine enough to draw the shape.
 * `counts[i]` holds samples in [edges[i], edges[i + 1]); `under` and `over` the rest.
 */
export interface LatencyHistogram {
  edgesMs: number[];
  counts: number[];
  under: number;
  over: number;
}

const PER_DECADE = 20;
const LOW_MS = 0.1;
const DECADES = 6;

export function latencyHistogram(samples: readonly number[]): LatencyHistogram {
  const buckets = PER_DECADE * DECADES;
  const edgesMs = Array.from({ length: buckets + 1 }, (_, i) => round(LOW_MS * 10 ** (i / PER_DECADE), 4));
  const counts = new Array<number>(buckets).fill(0);
  let under = 0;
  let over = 0;
  for (const v of samples) {
    if (v < LOW_MS) under += 1;
    else {
      const i = Math.floor(Math.log10(v / LOW_MS) * PER_DECADE);
      if (i >= buckets) over += 1;
      else counts[i]! += 1;
    }
  }
  return { edgesMs, counts, under, over };
}

export function mergeHistograms(histograms: readonly LatencyHistogram[]): LatencyHistogram {
  const [first] = histograms;
  if (!first) throw new Error('mergeHistograms needs at least one histogram');
  return {
    edgesMs: first.edgesMs,
    counts: first.counts.map((_, i) => histograms.reduce((sum, h) => sum + (h.counts[i] ?? 0), 0)),
    under: histograms.reduce((sum, h) => sum + h.under, 0),
    over: histograms.reduce((sum, h) => sum + h.over, 0),
  };
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
