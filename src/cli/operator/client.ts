/**
 * The operator CLI's client of the manager's GraphQL API (docs/graphql.md): where the
 * server is, which bearer token to send, queries and mutations as promises, and
 * subscriptions over SSE as async iterables. Every failure is a HornbillError whose code
 * says what happened; `exitCodeFor` turns it into the exit code scripts match on.
 *
 * ```ts
 * const client = new GraphQLClient(resolveConnection({ server: undefined, token: undefined }));
 * const { volume } = await client.query<{ volume: { state: string } | null }>(
 *   'query($name: String!) { volume(name: $name) { state } }', { name: 'vol1' });
 * ```
 *
 * Where the server and token come from, first match wins:
 * - server: `--server`, `$HORNBILL_SERVER`, `http://127.0.0.1:9500`
 * - token: `--token`, `$HORNBILL_TOKEN`, the file `$XDG_CONFIG_HOME/hornbill/token`
 *   (default `~/.config/hornbill/token`); none is fine when anonymous reads are allowed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ErrorCode, ErrorCodes, HornbillError } from '../../errors.ts';
import { ExitCode } from '../output.ts';

export const DEFAULT_SERVER = 'http://127.0.0.1:9500';
/** A query or mutation that takes longer than this is reported as MANAGER_UNREACHABLE. */
const REQUEST_TIMEOUT_MS = 30_000;
/** An SSE event larger than this breaks the stream (the server sends one volume per event). */
const SSE_EVENT_BYTES_MAX = 4 * 1024 * 1024;

/** Exit codes of the operator commands: those of src/cli/output.ts, extended. */
export const OperatorExitCode = {
  OK: ExitCode.OK,
  /** The API refused or failed the request (the coded error is printed). */
  FAILED: ExitCode.FAILED,
  USAGE: ExitCode.USAGE,
  /** The volume, node, snapshot or setting named does not exist. */
  NOT_FOUND: 3,
  /** No token, an unknown token, or a token whose scope is too low. */
  UNAUTHORIZED: 4,
  /** The manager cannot be reached (refused, timed out, not an API answer). */
  UNREACHABLE: 5,
} as const;

export interface Connection {
  /** http://HOST:PORT without a trailing slash and without /graphql. */
  server: string;
  token: string | undefined;
}

/** The token file's path: $XDG_CONFIG_HOME/hornbill/token, else ~/.config/hornbill/token. */
export function tokenFilePath(environment: NodeJS.ProcessEnv = process.env): string {
  const configHome = environment.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(configHome, 'hornbill', 'token');
}

/** Applies the precedence above; trims the token and the server's trailing slash or /graphql. */
export function resolveConnection(
  flags: { server?: string; token?: string },
  environment: NodeJS.ProcessEnv = process.env,
): Connection {
  let server = (flags.server || environment.HORNBILL_SERVER || DEFAULT_SERVER)
    .trim()
    .replace(/\/+$/, '')
    .replace(/\/graphql$/, '');
  // HOST:PORT alone means plain HTTP, as `hornbill up` serves.
  if (/^[^/\s:]+:\d+$/.test(server)) server = `http://${server}`;
  if (!/^https?:\/\/[^/\s]+$/.test(server)) {
    throw new HornbillError(
      'CLI_USAGE',
      `--server must be http://HOST:PORT (or HOST:PORT), not ${JSON.stringify(server)}`,
    );
  }
  let token = flags.token || environment.HORNBILL_TOKEN || undefined;
  if (token === undefined) {
    const file = tokenFilePath(environment);
    try {
      token = fs.readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new HornbillError('CLI_TOKEN_UNREADABLE', `${file}: ${(error as Error).message}`, {
          path: file,
        });
      }
    }
  }
  token = token?.trim() || undefined;
  return { server, token };
}

interface GraphQLErrorBody {
  message?: string;
  extensions?: { code?: string; field?: string };
}

/** `message (field)` as a coded error; an unknown code becomes CLI_API_ERROR with details.code. */
export function apiError(code: string | undefined, message: string, field?: string | null): HornbillError {
  const text = field ? `${message} (${field})` : message;
  const known = code !== undefined && Object.hasOwn(ErrorCodes, code);
  return new HornbillError(
    known ? (code as ErrorCode) : 'CLI_API_ERROR',
    known ? text : `${code ?? 'no code'}: ${text}`,
    {
      ...(field ? { field } : {}),
      ...(known ? {} : { code }),
    },
  );
}

/** The exit code for an error a command ended with. */
export function exitCodeFor(error: unknown): number {
  if (!(error instanceof HornbillError)) return OperatorExitCode.FAILED;
  if (error.code === 'CLI_USAGE') return OperatorExitCode.USAGE;
  if (error.code === 'GRAPHQL_UNAUTHENTICATED' || error.code === 'GRAPHQL_FORBIDDEN')
    return OperatorExitCode.UNAUTHORIZED;
  // Not reachable, or what answers is not a Hornbill manager (no such route, not its JSON).
  if (['MANAGER_UNREACHABLE', 'MANAGER_BAD_RESPONSE', 'MANAGER_ROUTE_NOT_FOUND'].includes(error.code))
    return OperatorExitCode.UNREACHABLE;
  if (error.code.endsWith('_NOT_FOUND')) return OperatorExitCode.NOT_FOUND;
  return OperatorExitCode.FAILED;
}

function unreachable(server: string, error: unknown): HornbillError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const why =
    (error as Error).name === 'TimeoutError'
      ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`
      : (cause?.code ?? cause?.message ?? (error as Error).message);
  return new HornbillError('MANAGER_UNREACHABLE', `cannot reach the manager at ${server}: ${why}`, {
    server,
  });
}

/** The first GraphQL error of a response as a HornbillError (the others follow in the message). */
function firstError(errors: GraphQLErrorBody[]): HornbillError {
  const [first, ...rest] = errors;
  const error = apiError(first.extensions?.code, first.message ?? 'error', first.extensions?.field);
  if (rest.length === 0) return error;
  const more = rest.map((other) => `${other.extensions?.code ?? 'ERROR'}: ${other.message}`).join('; ');
  return new HornbillError(error.code, `${error.message}; and ${more}`, error.details);
}

export interface UserError {
  code: string;
  message: string;
  field: string | null;
}

export class GraphQLClient {
  readonly server: string;
  private readonly token: string | undefined;

  constructor(connection: Connection) {
    this.server = connection.server;
    this.token = connection.token;
  }

  private headers(accept: string): Record<string, string> {
    return {
      'content-type': 'application/json',
      accept,
      ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
    };
  }

  /** Runs a query or mutation; the `data` object, or the first error, coded. */
  async query<T>(document: string, variables: Record<string, unknown> = {}): Promise<T> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.server}/graphql`, {
        method: 'POST',
        headers: this.headers('application/graphql-response+json, application/json'),
        body: JSON.stringify({ query: document, variables }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await response.text();
    } catch (error) {
      throw unreachable(this.server, error);
    }
    let body: { data?: T | null; errors?: GraphQLErrorBody[] };
    try {
      body = JSON.parse(text);
    } catch {
      throw new HornbillError(
        'MANAGER_BAD_RESPONSE',
        `${this.server}/graphql answered HTTP ${response.status} with something that is not JSON`,
        { status: response.status },
      );
    }
    if (Array.isArray(body.errors) && body.errors.length > 0) throw firstError(body.errors);
    if (body.data === undefined || body.data === null) {
      throw new HornbillError('MANAGER_BAD_RESPONSE', `HTTP ${response.status} without data or errors`);
    }
    return body.data;
  }

  /**
   * Runs a mutation whose payload is `{ <object>, errors }` and returns the payload; a
   * non-empty `errors` list is thrown as the first user error, coded.
   */
  async mutate<T extends { errors: UserError[] }>(
    document: string,
    variables: Record<string, unknown>,
    field: string,
  ): Promise<T> {
    const data = await this.query<Record<string, T>>(document, variables);
    const payload = data[field];
    if (payload.errors.length > 0) {
      const [first, ...rest] = payload.errors;
      const error = apiError(first.code, first.message, first.field);
      if (rest.length === 0) throw error;
      const more = rest.map((other) => `${other.code}: ${other.message}`).join('; ');
      throw new HornbillError(error.code, `${error.message}; and ${more}`, error.details);
    }
    return payload;
  }

  /** GETs a path of the manager (/metrics, /healthz, the resource API) as text. */
  async getText(pathname: string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<string> {
    let response: Response;
    try {
      response = await fetch(`${this.server}${pathname}`, {
        headers: this.token === undefined ? {} : { authorization: `Bearer ${this.token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw unreachable(this.server, error);
    }
    const text = await response.text();
    if (!response.ok) {
      let code: string | undefined;
      let message = text.slice(0, 200);
      try {
        ({ code, message } = JSON.parse(text));
      } catch {}
      throw apiError(code ?? 'MANAGER_BAD_RESPONSE', `GET ${pathname}: HTTP ${response.status}: ${message}`);
    }
    return text;
  }

  /**
   * Subscribes over SSE (`event: next` per result) until `signal` aborts (the iteration
   * then ends quietly) or the server ends the stream (CLI_WATCH_BROKEN).
   */
  async *subscribe<T>(
    document: string,
    variables: Record<string, unknown>,
    signal: AbortSignal,
  ): AsyncGenerator<T> {
    let response: Response;
    try {
      response = await fetch(`${this.server}/graphql`, {
        method: 'POST',
        headers: this.headers('text/event-stream'),
        body: JSON.stringify({ query: document, variables }),
        signal,
      });
    } catch (error) {
      if (signal.aborted) return;
      throw unreachable(this.server, error);
    }
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      const text = await response.text();
      let body: { errors?: GraphQLErrorBody[] } = {};
      try {
        body = JSON.parse(text);
      } catch {}
      if (Array.isArray(body.errors) && body.errors.length > 0) throw firstError(body.errors);
      throw new HornbillError(
        'MANAGER_BAD_RESPONSE',
        `the subscription got HTTP ${response.status}, not SSE`,
      );
    }
    try {
      for await (const event of sseEvents(response.body as ReadableStream<Uint8Array>)) {
        if (event.event === 'complete') break;
        if (event.event !== 'next') continue;
        const payload = JSON.parse(event.data) as { data?: T; errors?: GraphQLErrorBody[] };
        if (Array.isArray(payload.errors) && payload.errors.length > 0) throw firstError(payload.errors);
        if (payload.data !== undefined) yield payload.data;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof HornbillError) throw error;
      throw new HornbillError('CLI_WATCH_BROKEN', `the subscription broke: ${(error as Error).message}`);
    }
    if (signal.aborted) return;
    throw new HornbillError('CLI_WATCH_BROKEN', 'the manager ended the subscription');
  }
}

/** Splits an SSE body into events (`event:` and joined `data:` lines); bounded per event. */
export async function* sseEvents(
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>,
): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0 || event !== 'message') yield { event, data: data.join('\n') };
    }
    if (buffer.length > SSE_EVENT_BYTES_MAX) {
      throw new HornbillError('CLI_WATCH_BROKEN', `an SSE event is larger than ${SSE_EVENT_BYTES_MAX} bytes`);
    }
  }
}
