import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '..');
const rules = readFileSync(join(repo, 'docs', 'prometheus-alerts.yml'), 'utf8');
const readmes = ['outbox', 'consumer', 'saga', 'service']
  .map((p) => readFileSync(join(repo, 'packages', p, 'README.md'), 'utf8'))
  .join('\n');

/** Every name the READMEs write in backticks, and those of them that look like attributes, with `_` for `.`. */
const quoted = [...readmes.matchAll(/`([a-z][a-z0-9_.]*)/g)].map((m) => m[1]!);
const documented = new Set(quoted);
const attributes = new Set(quoted.filter((q) => q.includes('.')).map((q) => q.replaceAll('.', '_')));

/** The PromQL of every rule: `expr: <one line>` or `expr: |` and the lines indented under it. */
function expressions(): string[] {
  const lines = rules.split('\n');
  const found: string[] = [];
  for (const [i, line] of lines.entries()) {
    const match = /^(\s*)expr: (.*)$/.exec(line);
    if (!match) continue;
    if (match[2] !== '|') found.push(match[2]!);
    else {
      const block: string[] = [];
      for (const next of lines.slice(i + 1)) {
        if (next.search(/\S/) <= match[1]!.length) break;
        block.push(next.trim());
      }
      found.push(block.join(' '));
    }
  }
  return found;
}

describe('docs/prometheus-alerts.yml', () => {
  it('alerts only on metrics and labels that the package READMEs document under their Prometheus names', () => {
    const exprs = expressions();
    expect(exprs.length).toBe(rules.match(/^\s*- alert: /gm)!.length);
    for (const expr of exprs) {
      // Labels: in by (...), on (...), and label matchers inside {...}.
      const labels = new Set(
        [...expr.matchAll(/\b(?:by|on) \(([^)]*)\)/g), ...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!=|=)/g)].flatMap(
          (m) => m[1]!.split(',').map((l) => l.trim()),
        ),
      );
      const names = [...expr.matchAll(/\b(?:eventual|messaging)_[a-z_]+\b/g)].map((m) => m[0]);
      const metrics = names.filter((n) => !labels.has(n));
      expect(metrics.length, expr).toBeGreaterThan(0);
      for (const metric of metrics) expect(documented.has(metric), `${metric} in: ${expr}`).toBe(true);
      // Labels are OpenTelemetry attributes the READMEs name, dots become underscores.
      for (const label of labels) if (label !== 'job') expect(attributes.has(label), `label ${label}`).toBe(true);
    }
  });
});
