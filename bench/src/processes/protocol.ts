import type { Diagnostics } from './diagnostics.js';

/** Messages between the benchmark runner and a child process (over the Node IPC channel). */

export interface RelaySettings {
  batchSize: number;
  pollIntervalMs: number;
  leaseTtlMs?: number;
  instanceId: string;
}

/** Options passed to createConsumer / createKafkaSubscriber; unset ones keep their defaults. */
export interface ConsumerSettings {
  batchSize?: number;
  partitionsConcurrently?: number;
}

export type ParentMessage =
  | {
      type: 'init';
      mode: 'relay';
      databaseUrl: string;
      brokers: string[];
      schema: string;
      /** One record is sent here before `ready`, so connecting is not timed. */
      warmupTopic: string;
      relay: RelaySettings;
      /** Report `progress` after every published batch (throughput runs need it). */
      reportProgress: boolean;
    }
  | {
      type: 'init';
      mode: 'sendbatch';
      databaseUrl: string;
      brokers: string[];
      /** The seeded outbox whose rows are loaded into memory before timing. */
      sourceSchema: string;
      topic: string;
      warmupTopic: string;
      batchSize: number;
    }
  | {
      type: 'init';
      mode: 'consumer';
      databaseUrl: string;
      brokers: string[];
      /** Holds the consumer's outbox, its inbox and the `handled` table the handler writes (migrated by the parent). */
      schema: string;
      topic: string;
      /** A fresh group (and consumer name) per run, so it reads the topic from the start. */
      groupId: string;
      /** Records to settle before `done`. */
      expected: number;
      poolMax: number;
      consumer: ConsumerSettings;
    }
  | {
      type: 'init';
      mode: 'kafka-count';
      brokers: string[];
      topic: string;
      groupId: string;
      /** Records to count before `done`. */
      expected: number;
    }
  | { type: 'init'; mode: 'idle' }
  | { type: 'start' }
  /** Asks for the diagnostics since `start`. */
  | { type: 'report' }
  | { type: 'stop' };

export type ChildMessage =
  | { type: 'ready'; pid: number; loaded?: number }
  | { type: 'started'; at: number; shards: number[] }
  | { type: 'progress'; count: number; at: number }
  /** The relay's shard leases changed (relay:leases). */
  | { type: 'leases'; owned: number; at: number }
  | { type: 'done'; count: number; at: number }
  /** A consumer joined its group and was assigned partitions. */
  | { type: 'assigned'; partitions: number; at: number }
  | { type: 'report'; diagnostics: Diagnostics }
  | { type: 'log'; message: string }
  | { type: 'error'; message: string }
  | { type: 'stopped' };

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const epochNow = (): number => performance.timeOrigin + performance.now();
