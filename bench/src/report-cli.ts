/** Regenerates the results block of BENCHMARKS.md from bench/results/*.json without running anything. */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadResults, renderResults, updateBenchmarksMd } from './report.js';

const bench = fileURLToPath(new URL('..', import.meta.url));
await updateBenchmarksMd(
  join(bench, '..', 'BENCHMARKS.md'),
  renderResults(await loadResults(join(bench, 'results')), 'bench/results'),
);
