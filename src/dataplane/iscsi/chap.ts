import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseBinary, parseNumber, type TextPairs } from './text.ts';

/** A CHAP identity: the name sent in CHAP_N and the shared secret. */
export interface ChapCredentials {
  readonly username: string;
  readonly secret: string;
}

/**
 * CHAP settings of a target (RFC 7143 §12.1.3, RFC 1994 with MD5): the credentials every
 * initiator must prove, and optionally the target's own credentials for mutual CHAP (used
 * when the initiator challenges the target).
 */
export interface ChapOptions {
  readonly initiator: ChapCredentials;
  readonly target?: ChapCredentials;
}

/** RFC 7143 §12.1.3: secrets of at least 96 bits when IPsec is not used. */
export const MIN_CHAP_SECRET_BYTES = 12;
export const MAX_CHAP_SECRET_BYTES = 256;
const CHALLENGE_BYTES = 16;
const MD5_ALGORITHM = '5';

export function chapResponse(identifier: number, secret: string, challenge: Uint8Array): Buffer {
  return createHash('md5')
    .update(Buffer.from([identifier & 0xff]))
    .update(Buffer.from(secret, 'utf8'))
    .update(challenge)
    .digest();
}

export type ChapStep =
  | { kind: 'continue'; keys: TextPairs }
  | { kind: 'done'; keys: TextPairs }
  | { kind: 'failed'; reason: string };

/** The target side of one CHAP exchange during the security stage of a login. */
export class ChapAuthenticator {
  private state: 'wait-algorithm' | 'wait-response' | 'done' = 'wait-algorithm';
  private identifier = 0;
  private challenge: Buffer = Buffer.alloc(0);
  private readonly options: ChapOptions;

  constructor(options: ChapOptions) {
    this.options = options;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Handles the CHAP keys of one login request (a map of the keys it carried). */
  step(keys: Map<string, string>): ChapStep {
    if (this.state === 'wait-algorithm') {
      const algorithms = keys.get('CHAP_A');
      if (algorithms === undefined) return { kind: 'continue', keys: [] };
      if (!algorithms.split(',').includes(MD5_ALGORITHM)) {
        return { kind: 'failed', reason: `CHAP_A=${algorithms}: only MD5 (5) is supported` };
      }
      this.identifier = randomBytes(1)[0];
      this.challenge = randomBytes(CHALLENGE_BYTES);
      this.state = 'wait-response';
      return {
        kind: 'continue',
        keys: [
          ['CHAP_A', MD5_ALGORITHM],
          ['CHAP_I', String(this.identifier)],
          ['CHAP_C', `0x${this.challenge.toString('hex')}`],
        ],
      };
    }
    if (this.state === 'wait-response') {
      const name = keys.get('CHAP_N');
      const response = keys.get('CHAP_R');
      if (name === undefined || response === undefined) {
        return { kind: 'failed', reason: 'CHAP_N and CHAP_R expected after the challenge' };
      }
      const expected = chapResponse(this.identifier, this.options.initiator.secret, this.challenge);
      const received = parseBinary(response);
      if (name !== this.options.initiator.username)
        return { kind: 'failed', reason: `unknown CHAP user "${name}"` };
      if (received === null || received.length !== expected.length || !timingSafeEqual(received, expected)) {
        return { kind: 'failed', reason: 'CHAP response does not match' };
      }
      this.state = 'done';
      return this.mutual(keys);
    }
    return { kind: 'failed', reason: 'CHAP keys after authentication completed' };
  }

  /** When the initiator challenges the target (CHAP_I and CHAP_C), answer with the target secret. */
  private mutual(keys: Map<string, string>): ChapStep {
    const identifierText = keys.get('CHAP_I');
    const challengeText = keys.get('CHAP_C');
    if (identifierText === undefined && challengeText === undefined) return { kind: 'done', keys: [] };
    const target = this.options.target;
    if (target === undefined) return { kind: 'failed', reason: 'mutual CHAP requested but not configured' };
    const identifier = identifierText === undefined ? null : parseNumber(identifierText);
    const challenge = challengeText === undefined ? null : parseBinary(challengeText);
    if (identifier === null || identifier > 255 || challenge === null || challenge.length === 0) {
      return { kind: 'failed', reason: 'malformed mutual CHAP challenge' };
    }
    if (challenge.equals(this.challenge))
      return { kind: 'failed', reason: 'mutual CHAP challenge reflects ours' };
    const answer = chapResponse(identifier, target.secret, challenge);
    return {
      kind: 'done',
      keys: [
        ['CHAP_N', target.username],
        ['CHAP_R', `0x${answer.toString('hex')}`],
      ],
    };
  }
}
