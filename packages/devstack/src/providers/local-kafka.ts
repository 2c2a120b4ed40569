import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Admin, Kafka, logLevel } from 'kafkajs';
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

/** What one node of a local KRaft cluster needs to know about itself and the others. */
interface NodeConfig {
  id: number;
  dataDir: string;
  brokerPort: number;
  controllerPort: number;
  /** `id@127.0.0.1:port` of every controller, this node's included. */
  voters: string;
  /** Nodes in the cluster: replication of the internal topics follows it. */
  size: number;
}

function serverProperties(node: NodeConfig): string {
  // A cluster replicates everything three ways with two in sync, as production does;
  // a single broker can only keep one copy.
  const replicas = Math.min(node.size, 3);
  const minIsr = replicas > 1 ? 2 : 1;
  return [
    'process.roles=broker,controller',
    `node.id=${node.id}`,
    `controller.quorum.voters=${node.voters}`,
    `listeners=PLAINTEXT://127.0.0.1:${node.brokerPort},CONTROLLER://127.0.0.1:${node.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${node.brokerPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${join(node.dataDir, 'logs')}`,
    'num.partitions=1',
    `default.replication.factor=${replicas}`,
    `min.insync.replicas=${minIsr}`,
    'auto.create.topics.enable=true',
    `offsets.topic.replication.factor=${replicas}`,
    'offsets.topic.num.partitions=10',
    `transaction.state.log.replication.factor=${replicas}`,
    `transaction.state.log.min.isr=${minIsr}`,
    'transaction.state.log.num.partitions=5',
    'group.initial.rebalance.delay.ms=0',
    // A killed broker is noticed by the controller in 3 s, not 9 (test machines).
    'broker.session.timeout.ms=3000',
    'broker.heartbeat.interval.ms=500',
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

/** One broker+controller JVM of a local KRaft cluster: formatted, then started and stopped at will. */
interface KafkaProcess {
  readonly broker: string;
  readonly running: boolean;
  /** Starts the JVM and resolves once `ready()` holds. */
  start(): Promise<void>;
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

async function kafkaProcess(
  libs: string,
  node: NodeConfig,
  clusterId: string,
  logFile: string,
  heap: string,
  ready: (admin: Admin) => Promise<unknown>,
): Promise<KafkaProcess> {
  const config = join(node.dataDir, 'server.properties');
  const log4j = join(node.dataDir, 'log4j.properties');
  await writeFile(config, serverProperties(node));
  await writeFile(log4j, LOG4J);
  const jvm = [
    `-Xmx${heap}`,
    '-Xms128m',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${log4j}`,
    '-cp',
    `${libs}/*`,
  ];
  try {
    await run(javaBinary(), [...jvm, 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', config], {
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    throw new DevstackUnavailableError(
      `could not format Kafka storage with ${javaBinary()} (cluster id ${clusterId}): ${toolFailure(error)}`,
      { cause: error },
    );
  }
  const broker = `127.0.0.1:${node.brokerPort}`;
  let child: ChildProcess | undefined;
  let watchdog: Watchdog | undefined;

  return {
    broker,
    get running() {
      return child !== undefined;
    },
    async start() {
      const out = createWriteStream(logFile, { flags: 'a' });
      const proc = spawn(javaBinary(), [...jvm, 'kafka.Kafka', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Two sources, one log: neither may end it (the first to end would make the
      // other's late output a 'write after end' error); it closes when the broker exits.
      proc.stdout.pipe(out, { end: false });
      proc.stderr.pipe(out, { end: false });
      out.on('error', () => {}); // a log that cannot be written must not take the run down
      proc.once('close', () => out.end());
      child = proc;
      watchdog = startWatchdog(proc.pid ?? 0, 'TERM', [node.dataDir]);
      let exited: string | undefined;
      proc.once('exit', (code, signal) => {
        exited = `kafka node ${node.id} exited early (code ${code}, signal ${signal})`;
      });
      const admin = new Kafka({
        clientId: 'devstack-probe',
        brokers: [broker],
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
      }).admin();
      try {
        await waitUntil(
          `the Kafka broker on ${broker} to be ready`,
          async () => {
            if (exited) throw new DevstackUnavailableError(`${exited}; broker log: ${logFile}`);
            await admin.connect();
            return (await ready(admin)) ? true : undefined;
          },
          { timeoutMs: 90_000, intervalMs: 300 },
        );
      } finally {
        await admin.disconnect().catch(() => {});
      }
    },
    async stop(signal) {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
        child = undefined;
        return;
      }
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await gone;
      clearTimeout(timer);
      watchdog?.dismiss();
      child = undefined;
    },
  };
}

/** Free loopback ports, a data directory and the voters list for `size` nodes. */
async function clusterLayout(size: number, firstBrokerPort?: number): Promise<NodeConfig[]> {
  const nodes: NodeConfig[] = [];
  for (let id = 1; id <= size; id++) {
    nodes.push({
      id,
      dataDir: await mkdtemp(join(tmpdir(), `eventual-kafka-${id}-`)),
      brokerPort: (id === 1 && firstBrokerPort) || (await freePort()),
      controllerPort: await freePort(),
      voters: '',
      size,
    });
  }
  const voters = nodes.map((n) => `${n.id}@127.0.0.1:${n.controllerPort}`).join(',');
  for (const node of nodes) node.voters = voters;
  return nodes;
}

async function brokerVersion(logFile: string): Promise<string> {
  return (await readFile(logFile, 'utf8')).match(/Kafka version: (\S+)/)?.[1] ?? 'unknown';
}

/**
 * Apache Kafka in KRaft combined mode (one process is broker and controller) from
 * the official jars, on free loopback ports (the broker on `port` if given), with a
 * temporary data directory and a small heap. Ready once a kafkajs admin client can
 * list topics.
 */
export async function startLocalKafka(logFile: string, options: { port?: number } = {}): Promise<LocalKafka> {
  const libs = await resolveKafkaJars();
  const [node] = (await clusterLayout(1, options.port)) as [NodeConfig];
  let proc: KafkaProcess;
  try {
    proc = await kafkaProcess(libs, node, kafkaClusterId(), logFile, '512m', (admin) => admin.listTopics());
  } catch (error) {
    await rm(node.dataDir, { recursive: true, force: true });
    throw error;
  }
  await proc.start();
  return {
    brokers: [proc.broker],
    version: await brokerVersion(logFile),
    logFile,
    start: () => proc.start(),
    stop: () => proc.stop('SIGTERM'),
    kill: () => proc.stop('SIGKILL'),
    async destroy() {
      await proc.stop('SIGTERM');
      await rm(node.dataDir, { recursive: true, force: true });
    },
  };
}

/** One broker of a `LocalKafkaCluster`, to stop, kill and start again on its own. */
export interface LocalKafkaNode {
  /** Its `node.id` (1, 2, 3...), as Kafka's metadata names leaders and replicas. */
  id: number;
  /** Its address, `127.0.0.1:<port>`. */
  broker: string;
  /** The file this node's output is appended to. */
  logFile: string;
  /** Whether its process is up (started and neither stopped nor killed since). */
  readonly running: boolean;
  /** Stops it with SIGTERM (controlled shutdown: leadership moves first). */
  stop(): Promise<void>;
  /** Kills it with SIGKILL: a crash, nothing handed over. */
  kill(): Promise<void>;
  /** Starts it again with its data; resolves once every other running node sees it again. */
  start(): Promise<void>;
}

/**
 * A KRaft cluster of `size` combined broker+controller nodes on loopback, as
 * `startLocalKafkaCluster` returns it. Internal topics are replicated three ways with
 * `min.insync.replicas=2`, and so are topics created without settings of their own.
 */
export interface LocalKafkaCluster {
  /** Every node's address, for a kafkajs client's `brokers`. */
  brokers: string[];
  /** The version the first node printed about itself. */
  version: string;
  /** The nodes, by `id` order (`nodes[0].id === 1`). */
  nodes: LocalKafkaNode[];
  /** The node leading `topic`'s `partition` now (asks the cluster). */
  leaderOf(topic: string, partition: number): Promise<LocalKafkaNode>;
  /** The node coordinating consumer group `groupId` now: the leader of its `__consumer_offsets` partition. */
  coordinatorOf(groupId: string): Promise<LocalKafkaNode>;
  /** Stops every node and removes their data. */
  destroy(): Promise<void>;
}

/** Java's `String.hashCode`, which Kafka uses to place a group on a `__consumer_offsets` partition. */
export function javaStringHash(text: string): number {
  let hash = 0;
  for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
  return hash;
}

/**
 * Starts a local Kafka cluster of `size` nodes (default 3), each a KRaft
 * broker+controller JVM with a heap of `heap` (default 384m; about 0.5 GiB of RSS per
 * node once warm), logging to `<logDir>/kafka-<id>.log`. Resolves once every node
 * reports the full cluster. Killing two of three nodes also loses the controller
 * quorum: that is the "below min ISR" case of a real three-node cluster.
 */
export async function startLocalKafkaCluster(
  logDir: string,
  options: { size?: number; heap?: string } = {},
): Promise<LocalKafkaCluster> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1 || size > 9)
    throw new TypeError(`cluster size must be an integer from 1 to 9, got ${size}`);
  const libs = await resolveKafkaJars();
  const layout = await clusterLayout(size);
  const clusterId = kafkaClusterId();
  const sees = (count: () => number) => async (admin: Admin) =>
    (await admin.describeCluster()).brokers.length >= count();
  const procs: KafkaProcess[] = [];
  const running = () => procs.filter((p) => p.running).length;
  const removeData = () => Promise.all(layout.map((n) => rm(n.dataDir, { recursive: true, force: true })));
  try {
    for (const node of layout) {
      const logFile = join(logDir, `kafka-${node.id}.log`);
      // A node is back when it sees every node that is running, itself included.
      procs.push(
        await kafkaProcess(
          libs,
          node,
          clusterId,
          logFile,
          options.heap ?? '384m',
          sees(() => running()),
        ),
      );
    }
    // All at once: the controllers elect a leader only when a majority is up.
    await Promise.all(procs.map((p) => p.start()));
  } catch (error) {
    await Promise.allSettled(procs.map((p) => p.stop('SIGKILL')));
    await removeData();
    throw error;
  }
  const nodes: LocalKafkaNode[] = layout.map((node, i) => {
    const proc = procs[i]!;
    return {
      id: node.id,
      broker: proc.broker,
      logFile: join(logDir, `kafka-${node.id}.log`),
      get running() {
        return proc.running;
      },
      stop: () => proc.stop('SIGTERM'),
      kill: () => proc.stop('SIGKILL'),
      start: () => proc.start(),
    };
  });
  const brokers = nodes.map((n) => n.broker);
  const nodeById = (id: number | undefined, what: string) => {
    const node = nodes.find((n) => n.id === id);
    if (!node) throw new Error(`${what} has no leader now (leader ${id})`);
    return node;
  };
  const leaderOf = async (topic: string, partition: number) => {
    const admin = new Kafka({ clientId: 'devstack-cluster', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const leader = topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
      return nodeById(leader, `${topic}/${partition}`);
    } finally {
      await admin.disconnect();
    }
  };
  return {
    brokers,
    version: await brokerVersion(nodes[0]!.logFile),
    nodes,
    leaderOf,
    async coordinatorOf(groupId) {
      const partition = (javaStringHash(groupId) & 0x7fffffff) % 10; // offsets.topic.num.partitions
      try {
        return await leaderOf('__consumer_offsets', partition);
      } catch (error) {
        if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
        throw new Error(`group ${groupId} has no coordinator yet: no consumer group has joined this cluster`);
      }
    },
    async destroy() {
      await Promise.allSettled(procs.map((p) => p.stop('SIGTERM')));
      await removeData();
    },
  };
}
