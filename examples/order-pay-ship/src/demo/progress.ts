export interface OrderStats {
  orders: { PENDING: number; COMPLETED: number; CANCELLED: number };
  total: number;
}

export interface ProgressOptions {
  orderUrl: string;
  total: number;
  placed: () => number;
  kills: () => number;
  /** Raw text out (no newline added). */
  write: (text: string) => void;
  /** Rewrite one line in place (a terminal) instead of printing a line per second. */
  tty: boolean;
}

/**
 * The live progress line, from the order service's GET /stats once a second. While
 * the order service is down (chaos) the last numbers stay, marked as such.
 */
export function startProgress(o: ProgressOptions) {
  const started = Date.now();
  let last: OrderStats | undefined;
  let previousSettled = 0;
  let previousAt = started;
  let rate = 0;
  let stopped = false;

  async function tick(): Promise<void> {
    let reachable = true;
    try {
      const response = await fetch(`${o.orderUrl}/stats`, { signal: AbortSignal.timeout(900) });
      if (!response.ok) throw new Error(`GET /stats answered ${response.status}`);
      last = (await response.json()) as OrderStats;
    } catch {
      reachable = false;
    }
    if (stopped) return;
    const now = Date.now();
    const s = last?.orders ?? { PENDING: 0, COMPLETED: 0, CANCELLED: 0 };
    const settled = s.COMPLETED + s.CANCELLED;
    if (reachable) {
      const seconds = (now - previousAt) / 1000;
      if (seconds > 0) rate = 0.6 * rate + (0.4 * (settled - previousSettled)) / seconds;
      previousSettled = settled;
      previousAt = now;
    }
    const kills = o.kills();
    const line =
      `${((now - started) / 1000).toFixed(0).padStart(4)}s  placed ${String(o.placed()).padStart(String(o.total).length)}/${o.total}` +
      `  pending ${String(s.PENDING).padStart(4)}  completed ${String(s.COMPLETED).padStart(4)}` +
      `  cancelled ${String(s.CANCELLED).padStart(4)}  ${rate.toFixed(1).padStart(5)} settled/s` +
      (kills > 0 ? `  chaos kills ${kills}` : '') +
      (reachable ? '' : '  (order service restarting)');
    o.write(o.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  const timer = setInterval(() => void tick(), 1_000);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      if (o.tty) o.write('\n');
    },
  };
}
