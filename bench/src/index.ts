/** The harness API for benchmark files in src/benchmarks/ (see README.md). */

export { OutboxProcess } from './child.js';
export * from './fixtures.js';
export {
  type BenchContext,
  type Benchmark,
  type BenchmarkOutput,
  type Figure,
  figure,
  type Sample,
} from './harness.js';
export { paced } from './pacer.js';
export { startReceiver } from './receiver.js';
export { latencyHistogram, mergeHistograms, percentile, summariseLatencies } from './stats.js';
export { renderLatencyChart } from './svg.js';
