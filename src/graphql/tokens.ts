/**
 * API bearer tokens. A token is 32 random bytes in base64url, shown once when created;
 * the file keeps only its SHA-256 hash, with its name, scope and creation time (JSON,
 * mode 0600, replaced atomically). `verify` hashes the presented token and compares it
 * with every stored hash in constant time.
 *
 * ```ts
 * const tokens = await TokenStore.open('/var/lib/hornbill/api-tokens.json');
 * const token = await tokens.create('operator', 'admin');   // print it once
 * tokens.verify(token); // → { name: 'operator', scope: 'admin' }
 * ```
 *
 * The file is read again when it changes on disk (another process, `hornbill up`, may add
 * tokens), checked at most once per RELOAD_CHECK_INTERVAL_MS.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HornbillError } from '../errors.ts';
import { TOKEN_SCOPES, type TokenScope } from './context.ts';

export const TOKEN_BYTES = 32;
export const MAX_TOKENS = 1000;
/** A presented token longer than this is refused without hashing. */
export const MAX_TOKEN_LENGTH = 256;
export const RELOAD_CHECK_INTERVAL_MS = 1000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const HASH = /^[0-9a-f]{64}$/;

export interface TokenRecord {
  name: string;
  scope: TokenScope;
  /** SHA-256 of the token, hex. */
  hash: string;
  createdAt: string;
}

interface TokenFile {
  version: 1;
  tokens: TokenRecord[];
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function parseTokenFile(text: string, file: string): TokenRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new HornbillError('TOKEN_STORE_CORRUPT', `${file} is not JSON`, { path: file }, { cause: error });
  }
  const data = parsed as Partial<TokenFile> | null;
  if (data === null || typeof data !== 'object' || data.version !== 1 || !Array.isArray(data.tokens)) {
    throw new HornbillError('TOKEN_STORE_CORRUPT', `${file} is not a version 1 token file`, { path: file });
  }
  for (const record of data.tokens) {
    const valid =
      record !== null &&
      typeof record === 'object' &&
      typeof record.name === 'string' &&
      NAME.test(record.name) &&
      TOKEN_SCOPES.includes(record.scope) &&
      typeof record.hash === 'string' &&
      HASH.test(record.hash);
    if (!valid)
      throw new HornbillError('TOKEN_STORE_CORRUPT', `${file} holds a malformed token record`, {
        path: file,
      });
  }
  return data.tokens;
}

export class TokenStore {
  readonly file: string;
  private records: TokenRecord[];
  private hashes: Buffer[];
  private modifiedMs: number;
  private checkedAt = 0;

  private constructor(file: string, records: TokenRecord[], modifiedMs: number) {
    this.file = file;
    this.records = records;
    this.hashes = records.map((record) => Buffer.from(record.hash, 'hex'));
    this.modifiedMs = modifiedMs;
  }

  /** Opens (or starts, when absent) the token file at `file`. TOKEN_STORE_CORRUPT when unreadable. */
  static async open(file: string): Promise<TokenStore> {
    const loaded = TokenStore.read(file);
    return new TokenStore(file, loaded.records, loaded.modifiedMs);
  }

  private static read(file: string): { records: TokenRecord[]; modifiedMs: number } {
    let text: string;
    let modifiedMs: number;
    try {
      modifiedMs = statSync(file).mtimeMs;
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], modifiedMs: 0 };
      throw new HornbillError(
        'TOKEN_STORE_CORRUPT',
        `${file} cannot be read`,
        { path: file },
        { cause: error },
      );
    }
    return { records: parseTokenFile(text, file), modifiedMs };
  }

  /** Creates a token; returns it (the only time it is available). TOKEN_NAME_TAKEN when the name exists. */
  async create(name: string, scope: TokenScope): Promise<string> {
    if (!NAME.test(name)) {
      throw new HornbillError('INVALID_ARGUMENT', 'token names are 1-63 characters of A-Z a-z 0-9 . _ -', {
        field: 'name',
      });
    }
    if (!TOKEN_SCOPES.includes(scope)) {
      throw new HornbillError('INVALID_ARGUMENT', `scope must be one of ${TOKEN_SCOPES.join(', ')}`, {
        field: 'scope',
      });
    }
    this.reloadIfChanged(true);
    if (this.records.some((record) => record.name === name)) {
      throw new HornbillError('TOKEN_NAME_TAKEN', `a token named ${name} already exists`, { name });
    }
    if (this.records.length >= MAX_TOKENS) {
      throw new HornbillError('INVALID_ARGUMENT', `at most ${MAX_TOKENS} tokens`, { field: 'name' });
    }
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const record: TokenRecord = {
      name,
      scope,
      hash: hashToken(token).toString('hex'),
      createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    await this.write([...this.records, record]);
    return token;
  }

  /** Removes the token named `name`; false when there is none. */
  async revoke(name: string): Promise<boolean> {
    this.reloadIfChanged(true);
    const remaining = this.records.filter((record) => record.name !== name);
    if (remaining.length === this.records.length) return false;
    await this.write(remaining);
    return true;
  }

  /** Names, scopes and creation times (never hashes). */
  list(): { name: string; scope: TokenScope; createdAt: string }[] {
    this.reloadIfChanged(false);
    return this.records.map(({ name, scope, createdAt }) => ({ name, scope, createdAt }));
  }

  /** The token's name and scope, or undefined when it is not known. Constant time in the token. */
  verify(token: string): { name: string; scope: TokenScope } | undefined {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
    this.reloadIfChanged(false);
    const presented = hashToken(token);
    let found: TokenRecord | undefined;
    // Compare with every hash, without stopping early.
    for (let index = 0; index < this.hashes.length; index++) {
      if (timingSafeEqual(presented, this.hashes[index]) && found === undefined) found = this.records[index];
    }
    return found === undefined ? undefined : { name: found.name, scope: found.scope };
  }

  private reloadIfChanged(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < RELOAD_CHECK_INTERVAL_MS) return;
    this.checkedAt = now;
    let modifiedMs = 0;
    try {
      modifiedMs = statSync(this.file).mtimeMs;
    } catch {
      modifiedMs = 0;
    }
    if (modifiedMs === this.modifiedMs) return;
    try {
      const loaded = TokenStore.read(this.file);
      this.setRecords(loaded.records, loaded.modifiedMs);
    } catch (error) {
      // Keep serving the tokens read last; a write will surface the problem.
      if (force) throw error;
    }
  }

  private setRecords(records: TokenRecord[], modifiedMs: number): void {
    this.records = records;
    this.hashes = records.map((record) => Buffer.from(record.hash, 'hex'));
    this.modifiedMs = modifiedMs;
  }

  private async write(records: TokenRecord[]): Promise<void> {
    const content: TokenFile = { version: 1, tokens: records };
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
    await chmod(temporary, 0o600);
    await rename(temporary, this.file);
    this.setRecords(records, statSync(this.file).mtimeMs);
  }
}
