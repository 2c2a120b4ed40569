import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorText, type Logger } from './log.js';

/** Thrown by a route to answer with this status and `{ error: message }`. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Reply {
  status: number;
  body: unknown;
}

export interface Request {
  params: string[];
  query: URLSearchParams;
  body: () => Promise<unknown>;
}

export interface Route {
  method: string;
  path: RegExp;
  handle: (request: Request) => Promise<Reply>;
}

const MAX_BODY = 64 * 1024;

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A tiny JSON router on node:http: enough for the order API and the carrier simulator. */
export function jsonServer(routes: Route[], log: Logger): Server {
  return createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const matching = routes.filter((r) => r.path.test(url.pathname));
      if (matching.length === 0) throw new HttpError(404, `no route for ${url.pathname}`);
      const route = matching.find((r) => r.method === req.method);
      if (!route) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`);
      const params = (route.path.exec(url.pathname) ?? []).slice(1).map((p) => decodeURIComponent(p ?? ''));
      const reply = await route.handle({ params, query: url.searchParams, body: () => readJson(req) });
      send(res, reply.status, reply.body);
    } catch (error) {
      if (error instanceof HttpError) return send(res, error.status, { error: error.message });
      log(`request ${req.method} ${req.url} failed: ${errorText(error)}`);
      send(res, 500, { error: errorText(error) });
    }
  });
}

export function listen(server: Server, port: number, host = '0.0.0.0'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting connections and drops idle keep-alive ones; waits for requests in flight. */
export function close(server: Server, graceMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Checks a JSON object field by field; the message names the field to fix. */
export function field<T>(body: unknown, name: string, check: (v: unknown) => v is T, expected: string): T {
  const value = (body as Record<string, unknown> | null)?.[name];
  if (!check(value)) throw new HttpError(400, `${name} must be ${expected}, got ${JSON.stringify(value) ?? 'nothing'}`);
  return value;
}

export const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 200;
export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1000;
