import type { Diagnostics } from './diagnostics.js';

/** Messages between the benchmark runner and a child process (over the Node IPC channel). */

export interface RelaySettings {
  batchSize: number;
  pollIntervalMs: number;
  leaseTtlMs?: number;
  instanceId: string;
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
  | { type: 'report'; diagnostics: Diagnostics }
  | { type: 'log'; message: string }
  | { type: 'error'; message: string }
  | { type: 'stopped' };

/** Epoch milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const epochNow = (): number => performance.timeOrigin + performance.now();
