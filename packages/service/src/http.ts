import type { IncomingMessage, ServerResponse } from 'node:http';
import { asError, InvalidOptionError, integer } from '@eventual/core';
import { DEFAULT_HEALTH_TIMEOUT_MS, type HealthOptions, type ServiceHealth } from './health.js';

/** What `healthHandler` needs of a service: its `health()`. */
export interface HealthSource {
  /** See `Service.health`. */
  health(options?: HealthOptions): Promise<ServiceHealth>;
}

/** A node:http request listener (also what Express takes, and Fastify's `request.raw, reply.raw`). */
export type HealthRequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Serves `GET /healthz` (liveness: 200 while `live`, else 503; without the database
 * check, which liveness never depends on) and `GET /readyz` (readiness: 200 while
 * `ready`, else 503; the database answers within `timeoutMs`, so give the probe a
 * longer timeout), each with the `ServiceHealth` as its JSON body, so the reasons are
 * in the probe's log; `HEAD` answers the same status without a body, any other path
 * 404 and any other method 405. The path is matched on `req.url` without its query,
 * so mount it where the probes look: `http.createServer(healthHandler(service))`;
 * with Express `app.get(['/healthz', '/readyz'], healthHandler(service))`; with
 * Fastify `(request, reply) => { reply.hijack(); handler(request.raw, reply.raw); }`.
 */
export function healthHandler(service: HealthSource, options: HealthOptions = {}): HealthRequestListener {
  if (typeof (service as Partial<HealthSource> | null)?.health !== 'function')
    throw new InvalidOptionError('healthHandler(service) needs the service createService returned');
  const timeoutMs = integer(
    'healthHandler options.timeoutMs',
    options.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS,
    1,
    600_000,
  );
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = path === '/healthz' ? 'live' : path === '/readyz' ? 'ready' : undefined;
    if (!probe) return reply(res, req, 404, { error: `no health endpoint at ${path}: use /healthz or /readyz` });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return reply(res, req, 405, { error: `${req.method} ${path}: only GET and HEAD` }, { allow: 'GET, HEAD' });
    // Liveness never depends on the database: its probe does not wait for one that hangs.
    service.health({ timeoutMs, database: probe === 'ready' }).then(
      (health) => reply(res, req, health[probe] ? 200 : 503, health),
      // health() reports failures as checks; this would be a bug, and still an answer.
      (error: unknown) => reply(res, req, 503, { live: false, ready: false, error: asError(error).message }),
    );
  };
}

function reply(
  res: ServerResponse,
  req: IncomingMessage,
  status: number,
  body: object,
  headers: Record<string, string> = {},
): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : json);
}
