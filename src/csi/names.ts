/**
 * How CSI identifiers map to Hornbill resources, deterministically (so that a retried call
 * finds what the first one made, with no lookup table):
 *
 * - volume id = Volume name. A CSI name that is a DNS label of at most 63 characters (the
 *   provisioner's `pvc-<uid>`) is used as it is; any other name becomes
 *   `<lowercased, cleaned prefix>-<16 hex of sha256(name)>`, and the original is kept in the
 *   annotation `csi.hornbill.io/name`.
 * - snapshot id = `snap://<volume>/<snapshot>` (the form Volume spec.dataSource takes); the
 *   Snapshot resource's name comes from the CSI name by the same rule.
 * - the attach ticket of the csi-attacher: `csi-` + sha256(volume + driver + node), as Longhorn.
 * - list page tokens: `v1:` + base64url of the last name returned; anything else is refused.
 */
import { createHash } from 'node:crypto';
import { HornbillError } from '../errors.ts';

export const DRIVER_NAME = 'driver.hornbill.io';
export const CSI_NAME_ANNOTATION = 'csi.hornbill.io/name';
/** CSI names longer than this are refused (the specification sets none; Kubernetes' are < 128). */
export const CSI_NAME_LENGTH_MAX = 253;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** CSI bans U+0000-U+0008, U+000B, U+000C, U+000E-U+001F and U+007F-U+009F in names. */
export function hasBannedCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (
      code <= 0x08 ||
      code === 0x0b ||
      code === 0x0c ||
      (code >= 0x0e && code <= 0x1f) ||
      (code >= 0x7f && code <= 0x9f)
    )
      return true;
  }
  return false;
}

function hexOf(text: string, length: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** The resource name for a CSI volume or snapshot name; INVALID_ARGUMENT for a name CSI bans. */
export function resourceNameFor(csiName: string, field: string): string {
  if (csiName === '') throw new HornbillError('INVALID_ARGUMENT', `${field} is required`, { field });
  if (csiName.length > CSI_NAME_LENGTH_MAX || hasBannedCharacter(csiName))
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `${field} is longer than ${CSI_NAME_LENGTH_MAX} or has control characters`,
      {
        field,
      },
    );
  if (csiName.length <= 63 && DNS_LABEL.test(csiName)) return csiName;
  const cleaned = csiName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return `${cleaned === '' ? 'csi' : cleaned}-${hexOf(csiName, 16)}`;
}

export function attachTicketId(volume: string, node: string): string {
  return `csi-${hexOf(`${volume}${DRIVER_NAME}${node}`, 64)}`;
}

export function snapshotId(volume: string, snapshot: string): string {
  return `snap://${volume}/${snapshot}`;
}

/** `snap://<volume>/<snapshot>` → its parts, or undefined for any other text. */
export function parseSnapshotId(id: string): { volume: string; snapshot: string } | undefined {
  const match = /^snap:\/\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/.exec(id);
  if (match === null || match[1].length > 63 || match[3].length > 253) return undefined;
  return { volume: match[1], snapshot: match[3] };
}

export function pageToken(lastName: string): string {
  return `v1:${Buffer.from(lastName, 'utf8').toString('base64url')}`;
}

/** The name a page starts after; CSI_PAGINATION_TOKEN_INVALID (ABORTED) for a token we did not make. */
export function parsePageToken(token: string): string | undefined {
  if (token === '') return undefined;
  const match = /^v1:([A-Za-z0-9_-]{1,400})$/.exec(token);
  const name = match === null ? '' : Buffer.from(match[1], 'base64url').toString('utf8');
  if (name === '' || pageToken(name) !== token)
    throw new HornbillError(
      'CSI_PAGINATION_TOKEN_INVALID',
      `starting_token ${JSON.stringify(token)} was not issued by this driver`,
      {
        token,
      },
    );
  return name;
}

/**
 * One page of `items` (sorted by name): those after the token's name, at most `maxEntries`
 * (0: all), and the token of the next page ('' on the last).
 */
export function paginate<T>(
  items: readonly T[],
  nameOf: (item: T) => string,
  request: { max_entries: number; starting_token: string },
): { page: T[]; nextToken: string } {
  if (!Number.isInteger(request.max_entries) || request.max_entries < 0)
    throw new HornbillError('INVALID_ARGUMENT', 'max_entries must not be negative', { field: 'max_entries' });
  const after = parsePageToken(request.starting_token);
  const rest = after === undefined ? [...items] : items.filter((item) => nameOf(item) > after);
  const limit = request.max_entries === 0 ? rest.length : request.max_entries;
  const page = rest.slice(0, limit);
  const nextToken = rest.length > limit && page.length > 0 ? pageToken(nameOf(page[page.length - 1])) : '';
  return { page, nextToken };
}
