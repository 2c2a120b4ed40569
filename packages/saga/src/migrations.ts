import { type Migration, tableMigrations } from '@eventual/core';
import type { Knex } from 'knex';

type TableOptions = { schema?: string; table?: string };

/** The orchestrator's saga instance table, as a knex migration source. */
export function sagaMigrations(options: TableOptions = {}): Knex.MigrationSource<Migration> {
  return tableMigrations(
    options,
    'sagas',
    ({ qualified: q, name: table }) => [
      `create table ${q} (
      id text primary key,
      type text not null,
      status text not null check (status in ('running', 'compensating', 'completed', 'compensated', 'failed')),
      -- index of the step being executed (running) or compensated (compensating)
      step integer not null,
      -- commands sent / actions run for that step in the current phase
      attempt integer not null default 0,
      data jsonb not null,
      -- optimistic concurrency: every update checks and bumps it
      version integer not null default 1,
      -- what the saga waits for: a reply (until wake_at, the deadline) or a retry (at wake_at)
      waiting text check (waiting in ('reply', 'retry')),
      wake_at timestamptz,
      last_error text,
      history jsonb not null default '[]',
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`,
      `create index "${table}_status" on ${q} (status, updated_at)`,
      // The deadline/retry sweeper reads only sagas that wait for something with a time.
      `create index "${table}_due" on ${q} (wake_at) where status in ('running', 'compensating') and wake_at is not null`,
    ],
    () => [],
    ({ qualified: q }) => [
      {
        // The W3C trace context of the saga's last traced transition: a sweep (a deadline,
        // a retry) continues the saga's trace from it instead of starting one of its own.
        name: '002_trace_context',
        up: [`alter table ${q} add column trace_context text`],
        down: [`alter table ${q} drop column if exists trace_context`],
      },
    ],
  );
}

/**
 * The participant's record of saga commands it handled, keyed by (participant, saga,
 * step, phase): a retried command replays the stored reply instead of acting twice,
 * and a compensation that arrives before (or instead of) its forward command leaves a
 * tombstone that makes the late forward command fail without effect.
 */
export function participantMigrations(options: TableOptions = {}): Knex.MigrationSource<Migration> {
  return tableMigrations(options, 'saga_participant_log', ({ qualified: q }) => [
    `create table ${q} (
      participant text not null,
      saga_id text not null,
      step integer not null,
      phase text not null check (phase in ('forward', 'compensate')),
      outcome text not null check (outcome in ('success', 'failure', 'skipped')),
      reply jsonb not null,
      command_id uuid not null,
      created_at timestamptz not null default now(),
      primary key (participant, saga_id, step, phase)
    )`,
  ]);
}
