import { setTimeout as sleep } from 'node:timers/promises';
import { errorText } from '../shared/log.js';
import type { Random } from '../shared/random.js';
import type { ServiceName } from './processes.js';
import { KILLABLE, type World } from './world.js';

export interface ChaosOptions {
  /** Time between kills. */
  intervalMs: number;
  /** How long a killed service stays down before it is started again. */
  downMs: number;
}

export const DEFAULT_CHAOS: ChaosOptions = { intervalMs: 4_000, downMs: 1_500 };

export interface Chaos {
  kills: Record<ServiceName, number>;
  /** Stops killing, and waits until every victim is running again. */
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, SIGKILLs one of order, payment or warehouse at random (a crash:
 * no graceful stop, transactions cut mid-flight) and starts it again `downMs` later.
 * The clock does not wait for the restart, so a slow start does not slow the chaos
 * down; a service still down or starting is not picked again until it is back. The
 * carrier, being someone else's system, is never touched.
 */
export function startChaos(world: World, random: Random, options: ChaosOptions, log: (line: string) => void): Chaos {
  const kills = { order: 0, payment: 0, warehouse: 0, carrier: 0 } as Record<ServiceName, number>;
  const stopping = new AbortController();
  const recovering = new Map<ServiceName, Promise<void>>();

  async function recover(victim: ServiceName): Promise<void> {
    await sleep(options.downMs);
    try {
      await world.processes[victim].start();
    } catch (error) {
      // The world's supervisor restarts a service that exits during its start.
      log(`chaos: ${victim} did not come back: ${errorText(error)}`);
    }
  }

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        await sleep(options.intervalMs, undefined, { signal: stopping.signal });
      } catch {
        return;
      }
      const candidates = KILLABLE.filter((s) => !recovering.has(s) && world.processes[s].running);
      if (candidates.length === 0) continue;
      const victim = random.pick(candidates);
      const target = world.processes[victim];
      const pid = target.pid;
      await target.kill();
      kills[victim] += 1;
      log(`chaos: SIGKILL ${victim} (pid ${pid}); restarting it in ${options.downMs} ms`);
      const back = recover(victim).finally(() => recovering.delete(victim));
      recovering.set(victim, back);
    }
  })();

  return {
    kills,
    async stop() {
      stopping.abort();
      await loop;
      await Promise.all(recovering.values());
    },
  };
}
