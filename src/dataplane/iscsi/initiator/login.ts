import { randomBytes } from 'node:crypto';
import { HornbillError } from '../../../errors.ts';
import { type ChapCredentials, chapResponse } from '../chap.ts';
import { parseBinary, parseNumber, type TextPairs } from '../text.ts';

/** What the initiator asks for in login (RFC 7143 §13); the target may lower each value. */
export interface InitiatorLoginOptions {
  initiatorName: string;
  /** Omitted for a discovery session. */
  targetName: string | null;
  headerDigest: boolean;
  dataDigest: boolean;
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  immediateData: boolean;
  initialR2T: boolean;
  chap: { initiator: ChapCredentials; target?: ChapCredentials } | null;
}

/** Operational parameters in force after login, as the initiator sees them. */
export interface NegotiatedParameters {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Largest data segment the target accepts (its declaration; 8192 if it made none). */
  targetMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  immediateData: boolean;
  initialR2T: boolean;
  maxOutstandingR2T: number;
}

export function operationalKeys(options: InitiatorLoginOptions): TextPairs {
  const keys: TextPairs = [
    ['HeaderDigest', options.headerDigest ? 'CRC32C' : 'None'],
    ['DataDigest', options.dataDigest ? 'CRC32C' : 'None'],
    ['MaxRecvDataSegmentLength', String(options.maxRecvDataSegmentLength)],
    ['DefaultTime2Wait', '2'],
    ['DefaultTime2Retain', '0'],
    ['IFMarker', 'No'],
    ['OFMarker', 'No'],
    ['ErrorRecoveryLevel', '0'],
  ];
  if (options.targetName !== null) {
    keys.push(
      ['InitialR2T', options.initialR2T ? 'Yes' : 'No'],
      ['ImmediateData', options.immediateData ? 'Yes' : 'No'],
      ['MaxBurstLength', String(options.maxBurstLength)],
      ['FirstBurstLength', String(options.firstBurstLength)],
      ['MaxOutstandingR2T', '1'],
      ['MaxConnections', '1'],
      ['DataPDUInOrder', 'Yes'],
      ['DataSequenceInOrder', 'Yes'],
    );
  }
  return keys;
}

/** Applies the target's answers to the RFC 7143 defaults. */
export function applyOperationalAnswers(
  parameters: NegotiatedParameters,
  answers: Map<string, string>,
  options: InitiatorLoginOptions,
): void {
  const number = (key: string, fallback: number): number => {
    const value = answers.get(key);
    if (value === undefined) return fallback;
    const parsed = parseNumber(value);
    if (parsed === null) throw loginError(`target answered ${key}=${value}`);
    return parsed;
  };
  const yes = (key: string, fallback: boolean): boolean => {
    const value = answers.get(key);
    if (value === undefined) return fallback;
    if (value !== 'Yes' && value !== 'No') throw loginError(`target answered ${key}=${value}`);
    return value === 'Yes';
  };
  const digest = (key: string, fallback: boolean): boolean => {
    const value = answers.get(key);
    if (value === undefined) return fallback;
    if (value === 'CRC32C') return true;
    if (value === 'None') return false;
    throw loginError(`target answered ${key}=${value}`);
  };
  parameters.headerDigest = digest('HeaderDigest', parameters.headerDigest);
  parameters.dataDigest = digest('DataDigest', parameters.dataDigest);
  parameters.targetMaxRecvDataSegmentLength = number(
    'MaxRecvDataSegmentLength',
    parameters.targetMaxRecvDataSegmentLength,
  );
  parameters.maxBurstLength = Math.min(
    number('MaxBurstLength', parameters.maxBurstLength),
    options.maxBurstLength,
  );
  parameters.firstBurstLength = Math.min(
    number('FirstBurstLength', parameters.firstBurstLength),
    options.firstBurstLength,
    parameters.maxBurstLength,
  );
  parameters.immediateData = yes('ImmediateData', parameters.immediateData) && options.immediateData;
  parameters.initialR2T = yes('InitialR2T', parameters.initialR2T) || options.initialR2T;
  parameters.maxOutstandingR2T = number('MaxOutstandingR2T', parameters.maxOutstandingR2T);
}

export function defaultNegotiated(): NegotiatedParameters {
  return {
    headerDigest: false,
    dataDigest: false,
    targetMaxRecvDataSegmentLength: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
    immediateData: true,
    initialR2T: true,
    maxOutstandingR2T: 1,
  };
}

/** The initiator side of CHAP (and of mutual CHAP when target credentials are given). */
export class InitiatorChap {
  private readonly credentials: { initiator: ChapCredentials; target?: ChapCredentials };
  private mutualIdentifier = 0;
  private mutualChallenge: Buffer = Buffer.alloc(0);

  constructor(credentials: { initiator: ChapCredentials; target?: ChapCredentials }) {
    this.credentials = credentials;
  }

  /** Answers the target's CHAP_I / CHAP_C. */
  respond(answers: Map<string, string>): TextPairs {
    const identifier = parseNumber(answers.get('CHAP_I') ?? '');
    const challenge = parseBinary(answers.get('CHAP_C') ?? '');
    if (answers.get('CHAP_A') !== '5' || identifier === null || identifier > 255 || challenge === null) {
      throw loginError('malformed CHAP challenge from the target');
    }
    const keys: TextPairs = [
      ['CHAP_N', this.credentials.initiator.username],
      [
        'CHAP_R',
        `0x${chapResponse(identifier, this.credentials.initiator.secret, challenge).toString('hex')}`,
      ],
    ];
    if (this.credentials.target !== undefined) {
      this.mutualIdentifier = randomBytes(1)[0];
      this.mutualChallenge = randomBytes(16);
      keys.push(
        ['CHAP_I', String(this.mutualIdentifier)],
        ['CHAP_C', `0x${this.mutualChallenge.toString('hex')}`],
      );
    }
    return keys;
  }

  /** Checks the target's answer to our challenge (mutual CHAP). */
  verifyTarget(answers: Map<string, string>): void {
    const target = this.credentials.target;
    if (target === undefined) return;
    const response = parseBinary(answers.get('CHAP_R') ?? '');
    const expected = chapResponse(this.mutualIdentifier, target.secret, this.mutualChallenge);
    if (answers.get('CHAP_N') !== target.username || response === null || !response.equals(expected)) {
      throw loginError('the target failed mutual CHAP authentication');
    }
  }
}

export function loginError(message: string, details: Record<string, unknown> = {}): HornbillError {
  return new HornbillError('ISCSI_LOGIN_FAILED', message, details);
}
