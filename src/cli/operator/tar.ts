/**
 * A small tar writer (POSIX ustar, with pax `x` headers for paths over ustar's limits)
 * gzipped with node:zlib — what `hornbill support-bundle` writes. Regular files only, all
 * in memory (a bundle is a few MiB of text: resources, events, metrics, logs).
 *
 * ```ts
 * const archive = new TarWriter();
 * archive.add('bundle/summary.json', JSON.stringify(summary));
 * fs.writeFileSync('bundle.tar.gz', archive.gzip());
 * ```
 *
 * Format (POSIX.1-2001 pax / ustar): each file is a 512-byte header, its bytes padded to a
 * multiple of 512, and the archive ends with two zero blocks. Header fields are NUL- or
 * space-terminated octal numbers; the checksum is the byte sum of the header with the
 * checksum field read as eight spaces.
 */
import { gzipSync } from 'node:zlib';
import { HornbillError } from '../../errors.ts';

const BLOCK_BYTES = 512;
/** A bundle larger than this is refused rather than exhausting memory. */
export const ARCHIVE_BYTES_MAX = 1024 * 1024 * 1024;
/** ustar's size field holds 11 octal digits. */
const FILE_BYTES_MAX = 8 ** 11 - 1;

function writeString(header: Buffer, offset: number, length: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > length) throw new HornbillError('INTERNAL', `tar field too long: ${text}`);
  bytes.copy(header, offset);
}

/** An octal number in a field of `length` bytes: zero-padded digits and a NUL. */
function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  writeString(header, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

/**
 * Splits a path into ustar's prefix (≤155 bytes) and name (≤100 bytes) at a slash;
 * undefined when it cannot (then a pax header carries the path).
 */
export function splitUstarPath(path: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let slash = path.indexOf('/'); slash >= 0; slash = path.indexOf('/', slash + 1)) {
    const prefix = path.slice(0, slash);
    const name = path.slice(slash + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '')
      return { prefix, name };
  }
  return undefined;
}

/** A pax extended-header record: "<length> <key>=<value>\n", the length counting itself. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length++;
  return `${length}${body}`;
}

function header(
  path: { prefix: string; name: string },
  sizeBytes: number,
  options: { modifiedMs: number; type: '0' | 'x'; mode: number },
): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES);
  writeString(block, 0, 100, path.name);
  writeOctal(block, 100, 8, options.mode);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, sizeBytes);
  writeOctal(block, 136, 12, Math.floor(options.modifiedMs / 1000));
  block.fill(0x20, 148, 156); // the checksum field counts as spaces while summing
  writeString(block, 156, 1, options.type);
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeString(block, 265, 32, 'root');
  writeString(block, 297, 32, 'root');
  writeString(block, 345, 155, path.prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

function padding(length: number): Buffer {
  const remainder = length % BLOCK_BYTES;
  return Buffer.alloc(remainder === 0 ? 0 : BLOCK_BYTES - remainder);
}

export class TarWriter {
  private readonly chunks: Buffer[] = [];
  private readonly paths = new Set<string>();
  private totalBytes = 0;
  private readonly modifiedMs: number;

  constructor(options: { modifiedMs?: number } = {}) {
    this.modifiedMs = options.modifiedMs ?? Date.now();
  }

  /** Paths added so far, in order. */
  get entries(): string[] {
    return [...this.paths];
  }

  private push(buffer: Buffer): void {
    this.totalBytes += buffer.length;
    if (this.totalBytes > ARCHIVE_BYTES_MAX) {
      throw new HornbillError(
        'CLI_SUPPORT_BUNDLE_FAILED',
        `the archive would exceed ${ARCHIVE_BYTES_MAX} bytes`,
      );
    }
    this.chunks.push(buffer);
  }

  /** Adds a regular file (mode 0644). Paths are relative, with `/`, without `..`; each once. */
  add(path: string, content: string | Buffer): void {
    if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '')) {
      throw new HornbillError(
        'CLI_SUPPORT_BUNDLE_FAILED',
        `not a relative archive path: ${JSON.stringify(path)}`,
      );
    }
    if (path.includes('\0'))
      throw new HornbillError('CLI_SUPPORT_BUNDLE_FAILED', 'archive paths cannot hold NUL');
    if (this.paths.has(path))
      throw new HornbillError('CLI_SUPPORT_BUNDLE_FAILED', `${path} is in the archive twice`);
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    if (data.length > FILE_BYTES_MAX)
      throw new HornbillError('CLI_SUPPORT_BUNDLE_FAILED', `${path} is too large for tar`);
    let ustarPath = splitUstarPath(path);
    if (ustarPath === undefined) {
      const pax = Buffer.from(paxRecord('path', path), 'utf8');
      const paxName = `PaxHeaders/${path.split('/').pop()?.slice(0, 80)}`;
      this.push(
        header({ prefix: '', name: paxName }, pax.length, {
          modifiedMs: this.modifiedMs,
          type: 'x',
          mode: 0o644,
        }),
      );
      this.push(pax);
      this.push(padding(pax.length));
      ustarPath = { prefix: '', name: path.slice(-100).replace(/^[^/]*\//, '') || 'file' };
      ustarPath.name = Buffer.from(ustarPath.name)
        .subarray(0, 100)
        .toString('utf8')
        .replace(/\uFFFD$/, '');
    }
    this.push(header(ustarPath, data.length, { modifiedMs: this.modifiedMs, type: '0', mode: 0o644 }));
    this.push(data);
    this.push(padding(data.length));
    this.paths.add(path);
  }

  /** The tar archive: the entries and two zero blocks. */
  tar(): Buffer {
    return Buffer.concat([...this.chunks, Buffer.alloc(2 * BLOCK_BYTES)]);
  }

  /** The gzipped archive (.tar.gz). */
  gzip(): Buffer {
    return gzipSync(this.tar());
  }
}
