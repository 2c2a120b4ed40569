import type { Devstack } from '@eventual/devstack';
import { median, round } from './stats.js';

/**
 * The contract every benchmark file in `src/benchmarks/` fulfils: export a default
 * `Benchmark`. The runner discovers the files, so adding a benchmark is adding a file.
 */
export interface Benchmark {
  /** File and results name, e.g. `relay-throughput` -> `results/relay-throughput.json`. */
  name: string;
  /** Position in a full run and in the BENCHMARKS.md table (the numbering). */
  order: number;
  title: string;
  /** What is measured against what, in a sentence or two; goes to the JSON and the table. */
  description: string;
  run(ctx: BenchContext): Promise<BenchmarkOutput>;
}

export interface BenchContext {
  services: Devstack;
  /** Repetitions to run; each one measures the figure and its baseline back to back. */
  reps: number;
  /** Tiny counts, one repetition: checks the harness works, measures nothing. */
  smoke: boolean;
  /** Where this run's artefacts go (`results/` or `results/tmp/` for smoke runs). */
  resultsDir: string;
  log(message: string): void;
  /**
   * Runs repetition `index` on a quiet machine: waits until other processes leave the
   * CPU alone, measures foreign CPU load during `measure`, and measures again (at most
   * twice) when something else used more than a small allowance meanwhile. Put the
   * figure and its baseline of one repetition inside one call, so both see the same
   * conditions.
   */
  repetition<T>(index: number, measure: () => Promise<T>): Promise<{ result: T; load: RepetitionLoad }>;
  /** Picks the full-size or the smoke-size value of a parameter. */
  size<T>(full: T, smoke: T): T;
}

/** How loaded the machine was during a repetition (see cpu-meter.ts). */
export interface RepetitionLoad {
  attempts: number;
  waitedForQuietS: number;
  /** Average cores busy machine-wide, used by our processes, and by others. */
  busyCores: number;
  ownCores: number;
  /** busy - own: what the allowance is checked against. */
  notOursCores: number;
  /** Foreign processes as seen (can overcount), and what no process accounts for. */
  foreignCores: number;
  unattributedCores: number;
  ownByRole: Record<string, number>;
  /** True when even the last attempt had more foreign load than the allowance. */
  noisy: boolean;
  foreignTop: Array<{ pid: number; command: string; cores: number }>;
}

export interface Target {
  /** Whether the threshold applies to the figure's own value or to its ratio to the baseline. */
  on: 'value' | 'ratio';
  op: '>=' | '<=';
  threshold: number;
}

/** One repetition's measurement of a figure and of its baseline. */
export interface Sample {
  value: number;
  baseline: number;
}

export interface FigureSpec {
  id: string;
  label: string;
  unit: string;
  /** What the baseline is, in a few words. */
  baselineLabel: string;
  better: 'higher' | 'lower';
  target?: Target;
}

export interface Figure extends FigureSpec {
  /** Median over repetitions of the value, the baseline, and the per-repetition ratio. */
  value: number;
  baseline: number;
  ratio: number;
  met: boolean | null;
  reps: Array<Sample & { ratio: number }>;
}

export interface BenchmarkOutput {
  figures: Figure[];
  /** Parameters and anything a reader needs to interpret the figures. */
  parameters: Record<string, unknown>;
  /** Per-repetition diagnostics: lease splits, counts, checks. */
  details?: unknown;
  /** Markdown lines shown under the benchmark in BENCHMARKS.md (e.g. a diagnostic table). */
  notes?: string[];
  /** Files written next to the JSON (e.g. an SVG chart), relative to the results dir. */
  artefacts?: string[];
}

export interface BenchmarkResult extends BenchmarkOutput {
  /** The machine load of every repetition the benchmark measured (in order), as kept. */
  repetitionLoads?: RepetitionLoad[];
  name: string;
  order: number;
  title: string;
  description: string;
  command: string;
  startedAt: string;
  durationS: number;
  gitCommit: string;
  smoke: boolean;
  machine: Machine;
}

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  os: string;
  node: string;
  java: string;
  postgres: string;
  kafka: string;
  devstackProvider: string;
}

/**
 * Turns per-repetition samples into a figure. The ratio is taken per repetition
 * (value and baseline measured back to back, so slow drift of the machine cancels)
 * and the reported ratio is the median of those; value and baseline are medians too.
 */
export function figure(spec: FigureSpec, samples: Sample[]): Figure {
  const reps = samples.map((s) => ({
    value: round(s.value, 3),
    baseline: round(s.baseline, 3),
    ratio: s.value / s.baseline,
  }));
  const value = median(reps.map((r) => r.value));
  const baseline = median(reps.map((r) => r.baseline));
  const ratio = median(reps.map((r) => r.ratio));
  let met: boolean | null = null;
  if (spec.target) {
    const x = spec.target.on === 'value' ? value : ratio;
    met = spec.target.op === '>=' ? x >= spec.target.threshold : x <= spec.target.threshold;
  }
  return {
    ...spec,
    value: round(value, 3),
    baseline: round(baseline, 3),
    ratio: round(ratio, 3),
    met,
    reps: reps.map((r) => ({ ...r, ratio: round(r.ratio, 3) })),
  };
}

export function describeTarget(target: Target | undefined): string {
  if (!target) return '—';
  return target.on === 'ratio' ? `ratio ${target.op} ${target.threshold}x` : `${target.op} ${target.threshold}`;
}
