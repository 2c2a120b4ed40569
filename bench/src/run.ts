/**
 * Runs the benchmarks: `pnpm bench [--only a,b] [--reps N] [--smoke]`.
 *
 * Starts PostgreSQL and Kafka through the devstack, runs every benchmark file in
 * src/benchmarks/ (or the ones named), writes `results/<name>.json` and regenerates
 * the results block of BENCHMARKS.md. A smoke run (tiny counts, one repetition) or a
 * run of fewer than 3 repetitions is a trial: it writes to results/tmp/ (ignored by
 * git) and leaves BENCHMARKS.md alone.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type Devstack, startDevstack } from '@eventual/devstack';
import { CpuMeter, disturbance, waitForQuiet } from './cpu-meter.js';
import type { BenchContext, Benchmark, BenchmarkResult, RepetitionLoad } from './harness.js';
import { describeMachine, gitCommit } from './machine.js';
import { loadResults, renderResults, updateBenchmarksMd } from './report.js';

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');
const BENCHMARKS_MD = join(BENCH_DIR, '..', 'BENCHMARKS.md');

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

async function main(): Promise<void> {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  const { values } = parseArgs({
    args,
    options: {
      only: { type: 'string' },
      reps: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      noisy: { type: 'boolean', default: false },
      'non-durable': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const all = await discover();
  if (values.help) {
    process.stdout.write(
      `usage: pnpm bench [--only ${all.map((b) => b.name).join(',')}] [--reps N (default 3)] [--smoke] [--noisy]\n` +
        '  --smoke  tiny counts, 1 repetition, results/tmp/: checks the harness works\n' +
        '  --noisy  do not wait for other processes to leave the CPU alone, nor repeat disturbed repetitions\n' +
        "  --non-durable  run the local PostgreSQL with fsync=off, full_page_writes=off (the tests' setting), to compare\n",
    );
    return;
  }
  const smoke = values.smoke === true;
  const reps = smoke ? 1 : Number(values.reps ?? 3);
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer, got ${values.reps}`);
  // Only full runs of at least 3 repetitions become the record; anything else is a trial.
  const record = !smoke && reps >= 3;
  if (!smoke && !record)
    log(`${reps} repetition(s): a trial run, written to results/tmp/ (the record needs 3 or more)`);
  const wanted = values.only?.split(',').map((s) => s.trim());
  const unknown = wanted?.filter((w) => !all.some((b) => b.name === w)) ?? [];
  if (unknown.length > 0)
    throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${all.map((b) => b.name).join(', ')}`);
  const selected = wanted ? all.filter((b) => wanted.includes(b.name)) : all;

  const resultsDir = record ? RESULTS_DIR : join(RESULTS_DIR, 'tmp');
  await mkdir(resultsDir, { recursive: true });
  const command = `npx -y pnpm@10 bench${args.length > 0 ? ` ${args.join(' ')}` : ''}`;
  // PostgreSQL's durable defaults unless asked otherwise: commit-bound figures on a
  // database that does not fsync flatter every one of them. machine.postgres says which.
  const services = await startDevstack({ durable: values['non-durable'] !== true });
  let failed = false;
  const stop = () => services.stop({ keepLog: failed });
  process.once('SIGINT', () => {
    failed = true;
    void stop().finally(() => process.exit(130));
  });
  try {
    const machine = await describeMachine(services);
    const commit = await gitCommit();
    log(
      `${selected.map((b) => b.name).join(', ')}; ${reps} rep(s)${smoke ? ', smoke' : ''}; ${machine.cores} cores, ${machine.ramGiB} GiB`,
    );
    for (const benchmark of selected) {
      const started = new Date();
      log(`${benchmark.name}: ${benchmark.title}`);
      const loads: RepetitionLoad[] = [];
      const output = await benchmark.run(
        context(services, { reps, smoke, waitForQuiet: !smoke && !values.noisy }, resultsDir, benchmark.name, loads),
      );
      const result: BenchmarkResult = {
        name: benchmark.name,
        order: benchmark.order,
        title: benchmark.title,
        description: benchmark.description,
        command,
        startedAt: started.toISOString(),
        durationS: Math.round((Date.now() - started.getTime()) / 100) / 10,
        gitCommit: commit,
        smoke,
        machine,
        ...output,
        repetitionLoads: loads,
      };
      await writeFile(join(resultsDir, `${benchmark.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
      for (const f of result.figures) {
        const met = f.met === null ? '' : f.met ? ' (target met)' : ' (target MISSED)';
        log(`  ${f.label}: ${f.value} ${f.unit} vs ${f.baseline} ${f.unit} = ${f.ratio}x${met}`);
      }
    }
    if (record) {
      await updateBenchmarksMd(BENCHMARKS_MD, renderResults(await loadResults(RESULTS_DIR), 'bench/results'));
      log(`results in ${RESULTS_DIR}, table in ${BENCHMARKS_MD}`);
    } else {
      log(`trial run finished; results in ${resultsDir} (BENCHMARKS.md untouched)`);
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await stop();
  }
}

/**
 * CPU used by others (cores, averaged over a repetition: foreign processes plus busy
 * time no process of ours accounts for) above which the repetition is measured again.
 */
const FOREIGN_ALLOWANCE_CORES = 0.3;
const ATTEMPTS = 3;

function context(
  services: Devstack,
  options: { reps: number; smoke: boolean; waitForQuiet: boolean },
  resultsDir: string,
  name: string,
  loads: RepetitionLoad[],
): BenchContext {
  const benchLog = (message: string) => log(`${name}: ${message}`);
  return {
    services,
    reps: options.reps,
    smoke: options.smoke,
    resultsDir,
    log: benchLog,
    size: (full, small) => (options.smoke ? small : full),
    async repetition(index, measure) {
      for (let attempt = 1; ; attempt++) {
        const quiet = options.waitForQuiet ? await waitForQuiet(benchLog) : { waitedS: 0 };
        const meter = await CpuMeter.start();
        const result = await measure();
        const usage = await meter.stop();
        const others = disturbance(usage);
        const noisy = others > FOREIGN_ALLOWANCE_CORES;
        const load = {
          attempts: attempt,
          waitedForQuietS: quiet.waitedS,
          busyCores: usage.busyCores,
          ownCores: usage.ownCores,
          notOursCores: others,
          foreignCores: usage.foreignCores,
          unattributedCores: usage.unattributedCores,
          ownByRole: usage.ownByRole,
          noisy,
          foreignTop: usage.foreignTop,
        };
        if (!noisy || !options.waitForQuiet || attempt >= ATTEMPTS) {
          loads.push(load);
          if (noisy) benchLog(`rep ${index}: others used ${others} cores meanwhile; kept, marked noisy`);
          return { result, load };
        }
        const top = usage.foreignTop.map((f) => `${f.command} ${f.cores}`).join(', ');
        benchLog(`rep ${index}: others used ${others} cores meanwhile (${top}); measuring it again`);
      }
    },
  };
}

/** Every file in src/benchmarks/ default-exports a Benchmark: adding one is adding a file. */
async function discover(): Promise<Benchmark[]> {
  const dir = fileURLToPath(new URL('./benchmarks/', import.meta.url));
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort();
  const benchmarks = await Promise.all(
    files.map(async (f) => (await import(pathToFileURL(join(dir, f)).href)).default as Benchmark),
  );
  return benchmarks.sort((a, b) => a.order - b.order);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
