import { type ChildProcess, spawn } from 'node:child_process';

/**
 * A detached shell loop that outlives us: once this Node process is gone (Ctrl-C,
 * SIGKILL, a crashed test worker) it stops `targetPid` with `signal`, escalates to
 * SIGKILL after a grace period, and removes `removeDirs`. Without it, an interrupted
 * test run leaves java and postgres processes (and their data dirs) behind.
 */
export interface Watchdog {
  /** Called after a normal stop: the target is gone and nothing is left to reap. */
  dismiss(): void;
}

const SCRIPT = `
parent=$1; target=$2; signal=$3; shift 3
while kill -0 "$parent" 2>/dev/null && kill -0 "$target" 2>/dev/null; do sleep 1; done
if kill -0 "$target" 2>/dev/null; then
  kill -s "$signal" "$target" 2>/dev/null
  i=0
  while kill -0 "$target" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.5; i=$((i+1)); done
  kill -s KILL "$target" 2>/dev/null
fi
for dir in "$@"; do rm -rf "$dir"; done
`;

export function startWatchdog(targetPid: number, signal: 'TERM' | 'INT', removeDirs: string[] = []): Watchdog {
  const child: ChildProcess = spawn(
    'bash',
    ['-c', SCRIPT, 'eventual-devstack-watchdog', String(process.pid), String(targetPid), signal, ...removeDirs],
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  return {
    dismiss() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
