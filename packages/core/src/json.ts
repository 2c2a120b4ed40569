/**
 * What JSON.stringify would silently change or drop (undefined, functions, NaN,
 * Infinity, BigInt, class instances, cycles), naming the exact path, so whoever reads
 * the JSON back (a consumer, a saga after a restart) gets exactly what was meant.
 * Returns undefined for a value that round-trips; each package wraps the problem in
 * its own error (`InvalidMessageError` for a payload, `InvalidSagaDataError`).
 */
export function jsonProblem(
  value: unknown,
  path: string,
  { allowDates = true }: { allowDates?: boolean } = {},
): string | undefined {
  return problemAt(value, path, new Set<object>(), allowDates);
}

function problemAt(value: unknown, path: string, seen: Set<object>, allowDates: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot represent`;
    case 'object': {
      if (value === null) return undefined;
      if (seen.has(value)) return `${path} refers back to itself (a cycle); JSON cannot represent it`;
      if (value instanceof Date) {
        // JSON turns a Date into its ISO string: fine on the wire, but data read back is a string.
        if (!allowDates) return `${path} is a Date, which JSON gives back as a string; store the ISO string instead`;
        return Number.isNaN(value.getTime()) ? `${path} is an invalid Date` : undefined;
      }
      seen.add(value);
      let problem: string | undefined;
      if (Array.isArray(value)) {
        for (const [i, item] of value.entries()) {
          problem = problemAt(item, `${path}[${i}]`, seen, allowDates);
          if (problem) break;
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null)
          return `${path} is a ${proto?.constructor?.name ?? 'non-plain'} object; send plain objects, arrays and primitives`;
        for (const [k, v] of Object.entries(value)) {
          problem = problemAt(v, `${path}.${k}`, seen, allowDates);
          if (problem) break;
        }
      }
      seen.delete(value);
      return problem;
    }
    default:
      return `${path} is ${describeValue(value)}, which is not JSON-serialisable`;
  }
}

/** A short, readable rendering of any value for an error message (at most ~60 characters of JSON). */
export function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `a bigint (${value}n)`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (value === undefined) return 'undefined';
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 60)}...` : text;
}
