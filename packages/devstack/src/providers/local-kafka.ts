import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { DevstackUnavailableError } from '../errors.js';
import { logLine } from '../log.js';
import { freePort } from '../ports.js';
import { waitUntil } from '../wait.js';
import { startWatchdog, type Watchdog } from '../watchdog.js';

const run = promisify(execFile);

/** The Kafka release the devstack runs; kept in step with packages/devstack/kafka/pom.xml. */
export const KAFKA_VERSION = '3.9.1';

/** A Kafka broker run from the Apache jars with Java, in KRaft mode, as `startLocalKafka` returns it. */
export interface LocalKafka {
  /** Its one address, `127.0.0.1:<port>`. */
  brokers: string[];
  /** The version the broker printed about itself at startup (`Kafka version: x`). */
  version: string;
  /** The file the broker's output is appended to. */
  logFile: string;
  /** Stops the broker process (SIGTERM, controlled shutdown); data and ports are kept. */
  stop(): Promise<void>;
  /** Kills the broker process (SIGKILL, no shutdown at all: a crash); data and ports are kept. */
  kill(): Promise<void>;
  /** Starts the broker again on the same ports with the same data, after `stop()`. */
  start(): Promise<void>;
  /** Stops the broker and removes its data directory. */
  destroy(): Promise<void>;
}

function cacheDir(): string {
  return process.env.EVENTUAL_CACHE_DIR ?? join(homedir(), '.cache', 'eventual');
}

/**
 * Resolves the Kafka jars from Maven Central once into a cache outside the repo and
 * returns the directory. Later runs reuse it. Downloads go to a temporary directory
 * renamed into place, so an interrupted download is never mistaken for a complete one.
 */
export async function resolveKafkaJars(): Promise<string> {
  const libs = join(cacheDir(), `kafka-${KAFKA_VERSION}`, 'libs');
  if (existsSync(join(libs, `kafka_2.13-${KAFKA_VERSION}.jar`))) {
    logLine(`kafka jars: reusing cache ${libs}`);
    return libs;
  }
  const pom = fileURLToPath(new URL('../../kafka/pom.xml', import.meta.url));
  await mkdir(join(cacheDir(), `kafka-${KAFKA_VERSION}`), { recursive: true });
  const staging = await mkdtemp(join(cacheDir(), `kafka-${KAFKA_VERSION}`, 'libs-'));
  logLine(
    `kafka jars: resolving org.apache.kafka:kafka_2.13:${KAFKA_VERSION} from Maven Central with mvn into ${libs}`,
  );
  try {
    await run(
      'mvn',
      ['-B', '-q', '-f', pom, 'dependency:copy-dependencies', `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    const detail = error instanceof Error ? error.message : String(error);
    throw new DevstackUnavailableError(
      `could not resolve the Kafka jars with mvn (is Maven installed and Maven Central reachable?): ${detail}`,
      { cause: error },
    );
  }
  try {
    await rename(staging, libs);
  } catch (error) {
    // Another run finished first; its copy is as good as ours.
    await rm(staging, { recursive: true, force: true });
    if (!existsSync(libs)) throw error;
  }
  return libs;
}

/**
 * A cluster id as Kafka's own `kafka-storage random-uuid` makes it: 16 random bytes in
 * URL-safe base64 without padding, drawn again while it starts with '-'. An id that
 * starts with '-' is read by the storage tool as an option ("argument --cluster-id/-t:
 * expected one argument"): that failed about one start in 64.
 */
export function kafkaClusterId(random: (size: number) => Buffer = randomBytes): string {
  for (;;) {
    const id = random(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** What a failed tool run said: its own stderr (the real reason), else the error. */
function toolFailure(error: unknown): string {
  const { stderr, code } = error as { stderr?: unknown; code?: unknown };
  const text = typeof stderr === 'string' ? stderr.trim() : '';
  if (code === 'ENOENT') return `${javaBinary()} was not found; install Java 17 or set JAVA_HOME`;
  if (text) return `exit code ${String(code)}: ${text.split('\n').slice(-20).join('\n')}`;
  return error instanceof Error ? error.message : String(error);
}

function javaBinary(): string {
  return process.env.JAVA_HOME ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

function serverProperties(dataDir: string, brokerPort: number, controllerPort: number): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${join(dataDir, 'logs')}`,
    'num.partitions=1',
    'auto.create.topics.enable=true',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=5',
    'group.initial.rebalance.delay.ms=0',
    // A broker on a developer laptop or CI box: no need to keep segments long.
    'log.retention.hours=1',
    '',
  ].join('\n');
}

const LOG4J = [
  'log4j.rootLogger=INFO, stdout',
  'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
  'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
  'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
  'log4j.logger.kafka.request.logger=WARN',
  'log4j.logger.state.change.logger=WARN',
  '',
].join('\n');

/**
 * Apache Kafka in KRaft combined mode (one process is broker and controller) from
 * the official jars, on free loopback ports (the broker on `port` if given), with a temporary data directory and a
 * small heap. Ready once a kafkajs admin client can list topics.
 */
export async function startLocalKafka(logFile: string, options: { port?: number } = {}): Promise<LocalKafka> {
  const libs = await resolveKafkaJars();
  const dataDir = await mkdtemp(join(tmpdir(), 'eventual-kafka-'));
  const [brokerPort, controllerPort] = [options.port || (await freePort()), await freePort()];
  const config = join(dataDir, 'server.properties');
  const log4j = join(dataDir, 'log4j.properties');
  await writeFile(config, serverProperties(dataDir, brokerPort, controllerPort));
  await writeFile(log4j, LOG4J);
  const classpath = `${libs}/*`;
  const jvm = [
    '-Xmx512m',
    '-Xms128m',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${log4j}`,
    '-cp',
    classpath,
  ];
  const clusterId = kafkaClusterId();
  try {
    await run(javaBinary(), [...jvm, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', config], {
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw new DevstackUnavailableError(
      `could not format Kafka storage with ${javaBinary()} (cluster id ${clusterId}): ${toolFailure(error)}`,
      { cause: error },
    );
  }
  const brokers = [`127.0.0.1:${brokerPort}`];
  let child: ChildProcess | undefined;
  let watchdog: Watchdog | undefined;

  const start = async () => {
    const out = createWriteStream(logFile, { flags: 'a' });
    const proc = spawn(javaBinary(), [...jvm, 'kafka.Kafka', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Two sources, one log: neither may end it (the first to end would make the
    // other's late output a 'write after end' error); it closes when the broker exits.
    proc.stdout.pipe(out, { end: false });
    proc.stderr.pipe(out, { end: false });
    out.on('error', () => {}); // a log that cannot be written must not take the run down
    proc.once('close', () => out.end());
    child = proc;
    watchdog = startWatchdog(proc.pid ?? 0, 'TERM', [dataDir]);
    let exited: string | undefined;
    proc.once('exit', (code, signal) => {
      exited = `kafka exited early (code ${code}, signal ${signal})`;
    });
    const admin = new Kafka({
      clientId: 'devstack-probe',
      brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    }).admin();
    try {
      await waitUntil(
        `the Kafka broker on ${brokers[0]} to list topics`,
        async () => {
          if (exited) throw new DevstackUnavailableError(`${exited}; broker log: ${logFile}`);
          await admin.connect();
          await admin.listTopics();
          return true;
        },
        { timeoutMs: 90_000, intervalMs: 300 },
      );
    } finally {
      await admin.disconnect().catch(() => {});
    }
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
    watchdog?.dismiss();
    child = undefined;
  };

  await start();
  const version = (await readFile(logFile, 'utf8')).match(/Kafka version: (\S+)/)?.[1] ?? 'unknown';
  return {
    brokers,
    version,
    logFile,
    start,
    stop: () => stop('SIGTERM'),
    kill: () => stop('SIGKILL'),
    async destroy() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
