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

export const DEFAULT_CHAOS: ChaosOptions = { intervalMs: 3_000, downMs: 1_500 };

export interface Chaos {
  kills: Record<ServiceName, number>;
  /** Stops killing, and waits until the last victim is running again. */
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, SIGKILLs one of order, payment or warehouse at random (a crash:
 * no graceful stop, transactions cut mid-flight), and starts it again `downMs` later.
 * One service is down at a time; the carrier, being external, is never touched.
 */
export function startChaos(world: World, random: Random, options: ChaosOptions, log: (line: string) => void): Chaos {
  const kills = { order: 0, payment: 0, warehouse: 0, carrier: 0 } as Record<ServiceName, number>;
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        await sleep(options.intervalMs, undefined, { signal: stopping.signal });
      } catch {
        return;
      }
      const victim = random.pick(KILLABLE);
      const target = world.processes[victim];
      if (!target.running) continue;
      const pid = target.pid;
      await target.kill();
      kills[victim] += 1;
      log(`chaos: SIGKILL ${victim} (pid ${pid}); restarting it in ${options.downMs} ms`);
      await sleep(options.downMs);
      try {
        await target.start();
      } catch (error) {
        log(`chaos: ${victim} did not come back: ${errorText(error)}`);
      }
    }
  })();
  return {
    kills,
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
