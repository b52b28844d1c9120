import { ChapAuthenticator, type ChapOptions } from './chap.ts';
import { parseNumber, type TextPairs } from './text.ts';

/** Login status class and detail (RFC 7143 §11.13.5), as (class << 8) | detail. */
export const LoginStatus = {
  SUCCESS: 0x0000,
  INITIATOR_ERROR: 0x0200,
  AUTHENTICATION_FAILURE: 0x0201,
  AUTHORIZATION_FAILURE: 0x0202,
  NOT_FOUND: 0x0203,
  TARGET_REMOVED: 0x0204,
  UNSUPPORTED_VERSION: 0x0205,
  TOO_MANY_CONNECTIONS: 0x0206,
  MISSING_PARAMETER: 0x0207,
  CANNOT_INCLUDE_IN_SESSION: 0x0208,
  SESSION_TYPE_NOT_SUPPORTED: 0x0209,
  SESSION_DOES_NOT_EXIST: 0x020a,
  INVALID_DURING_LOGIN: 0x020b,
  TARGET_ERROR: 0x0300,
  SERVICE_UNAVAILABLE: 0x0301,
  OUT_OF_RESOURCES: 0x0302,
} as const;

export const Stage = { SECURITY: 0, OPERATIONAL: 1, FULL_FEATURE: 3 } as const;

/** What the target offers; the negotiated values never exceed these. */
export interface TargetLoginLimits {
  /** Largest data segment the target accepts (declared as its MaxRecvDataSegmentLength). */
  readonly maxRecvDataSegmentLength: number;
  readonly maxBurstLength: number;
  readonly firstBurstLength: number;
  readonly immediateData: boolean;
  readonly initialR2T: boolean;
  readonly maxOutstandingR2T: number;
  readonly defaultTime2Wait: number;
  readonly defaultTime2Retain: number;
}

/** Session-wide operational parameters once login is done (RFC 7143 §13 defaults before). */
export interface SessionParameters {
  sessionType: 'Normal' | 'Discovery';
  initiatorName: string;
  initiatorAlias: string;
  targetName: string;
  headerDigest: boolean;
  dataDigest: boolean;
  /** The initiator's limit: the largest data segment the target may send. */
  initiatorMaxRecvDataSegmentLength: number;
  /** The target's limit: the largest data segment the initiator may send. */
  targetMaxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  immediateData: boolean;
  initialR2T: boolean;
  maxOutstandingR2T: number;
  errorRecoveryLevel: number;
  dataPDUInOrder: boolean;
  dataSequenceInOrder: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxConnections: number;
}

export function defaultParameters(limits: TargetLoginLimits): SessionParameters {
  return {
    sessionType: 'Normal',
    initiatorName: '',
    initiatorAlias: '',
    targetName: '',
    headerDigest: false,
    dataDigest: false,
    initiatorMaxRecvDataSegmentLength: 8192,
    targetMaxRecvDataSegmentLength: limits.maxRecvDataSegmentLength,
    maxBurstLength: Math.min(262144, limits.maxBurstLength),
    firstBurstLength: Math.min(65536, limits.firstBurstLength),
    immediateData: limits.immediateData,
    initialR2T: true,
    maxOutstandingR2T: 1,
    errorRecoveryLevel: 0,
    dataPDUInOrder: true,
    dataSequenceInOrder: true,
    defaultTime2Wait: 2,
    defaultTime2Retain: 20,
    maxConnections: 1,
  };
}

export interface LoginRequestView {
  currentStage: number;
  nextStage: number;
  transit: boolean;
  pairs: TextPairs;
}

export type LoginDecision =
  | { kind: 'respond'; keys: TextPairs; transit: boolean; nextStage: number }
  | { kind: 'fail'; status: number; reason: string };

export interface LoginContext {
  readonly limits: TargetLoginLimits;
  readonly chap: ChapOptions | null;
  readonly portalGroupTag: number;
  /** Whether a target of this name exists (normal sessions). */
  targetExists(name: string): boolean;
}

type NumericRule = {
  min: number;
  max: number;
  pick: 'min' | 'max';
  ours: (limits: TargetLoginLimits) => number;
};

const NUMERIC_KEYS: Record<string, NumericRule> = {
  MaxBurstLength: { min: 512, max: 0xffffff, pick: 'min', ours: (l) => l.maxBurstLength },
  FirstBurstLength: { min: 512, max: 0xffffff, pick: 'min', ours: (l) => l.firstBurstLength },
  MaxOutstandingR2T: { min: 1, max: 65535, pick: 'min', ours: (l) => l.maxOutstandingR2T },
  MaxConnections: { min: 1, max: 65535, pick: 'min', ours: () => 1 },
  ErrorRecoveryLevel: { min: 0, max: 2, pick: 'min', ours: () => 0 },
  DefaultTime2Wait: { min: 0, max: 3600, pick: 'max', ours: (l) => l.defaultTime2Wait },
  DefaultTime2Retain: { min: 0, max: 3600, pick: 'min', ours: (l) => l.defaultTime2Retain },
};

/** Boolean keys: `and` results are Yes only if both say Yes, `or` results if either does. */
const BOOLEAN_KEYS: Record<string, { rule: 'and' | 'or'; ours: (limits: TargetLoginLimits) => boolean }> = {
  ImmediateData: { rule: 'and', ours: (l) => l.immediateData },
  InitialR2T: { rule: 'or', ours: (l) => l.initialR2T },
  DataPDUInOrder: { rule: 'or', ours: () => true },
  DataSequenceInOrder: { rule: 'or', ours: () => true },
  IFMarker: { rule: 'and', ours: () => false },
  OFMarker: { rule: 'and', ours: () => false },
};

/** Keys only a target may send; an initiator sending them is in error. */
const TARGET_ONLY_KEYS = new Set(['TargetAlias', 'TargetAddress', 'TargetPortalGroupTag']);
/** Keys that are exchanged only during the leading login. */
const DECLARATIVE_NAME_KEYS = new Set(['InitiatorName', 'InitiatorAlias', 'TargetName', 'SessionType']);

/**
 * The target side of one login (RFC 7143 §6 and §13): stage transitions, the security stage
 * (AuthMethod None or CHAP), and operational parameter negotiation. One instance per login;
 * `process` takes each complete login request and says what to answer.
 */
export class LoginNegotiation {
  readonly parameters: SessionParameters;
  private readonly context: LoginContext;
  private readonly seenKeys = new Set<string>();
  private authenticator: ChapAuthenticator | null = null;
  private authenticated: boolean;
  private firstResponse = true;
  private declaredOurLength = false;
  private lastFailure: LoginDecision | null = null;

  constructor(context: LoginContext) {
    this.context = context;
    this.parameters = defaultParameters(context.limits);
    this.authenticated = context.chap === null;
  }

  process(request: LoginRequestView): LoginDecision {
    const { currentStage, nextStage, transit } = request;
    if (currentStage !== Stage.SECURITY && currentStage !== Stage.OPERATIONAL) {
      return fail(LoginStatus.INITIATOR_ERROR, `login in current stage ${currentStage}`);
    }
    if (transit && (nextStage <= currentStage || nextStage === 2)) {
      return fail(LoginStatus.INITIATOR_ERROR, `invalid stage transition ${currentStage} -> ${nextStage}`);
    }
    const keys = new Map<string, string>();
    for (const [key, value] of request.pairs) keys.set(key, value);
    const response: TextPairs = [];

    const names = this.takeNames(keys);
    if (names !== null) return names;
    if (this.firstResponse) {
      if (this.parameters.initiatorName === '')
        return fail(LoginStatus.MISSING_PARAMETER, 'InitiatorName missing');
      if (this.parameters.sessionType === 'Normal') {
        if (this.parameters.targetName === '')
          return fail(LoginStatus.MISSING_PARAMETER, 'TargetName missing');
        if (!this.context.targetExists(this.parameters.targetName)) {
          return fail(LoginStatus.NOT_FOUND, `no target named ${this.parameters.targetName}`);
        }
        response.push(['TargetPortalGroupTag', String(this.context.portalGroupTag)]);
      }
    }

    let canTransit = transit;
    if (currentStage === Stage.SECURITY) {
      const security = this.security(keys, response);
      if (security === 'failed') return this.lastFailure!;
      if (security === 'continue') canTransit = false;
    } else if (!this.authenticated) {
      return fail(LoginStatus.AUTHENTICATION_FAILURE, 'CHAP authentication is required');
    }
    for (const [key, value] of keys) {
      if (key === 'AuthMethod' || key.startsWith('CHAP_')) {
        if (currentStage !== Stage.SECURITY)
          return fail(LoginStatus.INITIATOR_ERROR, `${key} outside security stage`);
        continue;
      }
      const failure = this.operational(key, value, response);
      if (failure !== null) return failure;
    }
    // Declare our MaxRecvDataSegmentLength once, in the operational stage (or when skipping it).
    const leavingForFullFeature = canTransit && nextStage === Stage.FULL_FEATURE;
    if (!this.declaredOurLength && (currentStage === Stage.OPERATIONAL || leavingForFullFeature)) {
      response.push(['MaxRecvDataSegmentLength', String(this.context.limits.maxRecvDataSegmentLength)]);
      this.declaredOurLength = true;
    }
    this.firstResponse = false;
    if (this.parameters.firstBurstLength > this.parameters.maxBurstLength) {
      this.parameters.firstBurstLength = this.parameters.maxBurstLength;
    }
    return {
      kind: 'respond',
      keys: response,
      transit: canTransit,
      nextStage: canTransit ? nextStage : currentStage,
    };
  }

  /** Names and session type; they may come only once, and only in the first requests. */
  private takeNames(keys: Map<string, string>): LoginDecision | null {
    for (const key of DECLARATIVE_NAME_KEYS) {
      const value = keys.get(key);
      if (value === undefined) continue;
      keys.delete(key);
      if (this.seenKeys.has(key)) return fail(LoginStatus.INITIATOR_ERROR, `${key} declared twice`);
      this.seenKeys.add(key);
      if (value.length === 0 || value.length > 223)
        return fail(LoginStatus.INITIATOR_ERROR, `${key} has an invalid length`);
      if (key === 'InitiatorName') this.parameters.initiatorName = value;
      else if (key === 'InitiatorAlias') this.parameters.initiatorAlias = value;
      else if (key === 'TargetName') this.parameters.targetName = value;
      else if (value === 'Normal' || value === 'Discovery') this.parameters.sessionType = value;
      else return fail(LoginStatus.SESSION_TYPE_NOT_SUPPORTED, `SessionType=${value}`);
    }
    return null;
  }

  private security(keys: Map<string, string>, response: TextPairs): 'continue' | 'done' | 'failed' {
    const chap = this.context.chap;
    const methods = keys.get('AuthMethod');
    if (methods !== undefined) {
      if (this.seenKeys.has('AuthMethod'))
        return this.failWith(LoginStatus.INITIATOR_ERROR, 'AuthMethod sent twice');
      this.seenKeys.add('AuthMethod');
      const offered = methods.split(',');
      if (chap !== null) {
        if (!offered.includes('CHAP')) {
          response.push(['AuthMethod', 'Reject']);
          return this.failWith(LoginStatus.AUTHENTICATION_FAILURE, `AuthMethod=${methods}: CHAP is required`);
        }
        response.push(['AuthMethod', 'CHAP']);
        this.authenticator = new ChapAuthenticator(chap);
      } else if (offered.includes('None')) {
        response.push(['AuthMethod', 'None']);
      } else {
        return this.failWith(
          LoginStatus.AUTHENTICATION_FAILURE,
          `AuthMethod=${methods}: only None is configured`,
        );
      }
    }
    if (chap === null) return 'done';
    if (this.authenticator === null) {
      return this.failWith(LoginStatus.AUTHENTICATION_FAILURE, 'CHAP authentication is required');
    }
    if (this.authenticator.done) return 'done';
    const step = this.authenticator.step(keys);
    if (step.kind === 'failed') return this.failWith(LoginStatus.AUTHENTICATION_FAILURE, step.reason);
    response.push(...step.keys);
    if (step.kind === 'continue') return 'continue';
    this.authenticated = true;
    return 'done';
  }

  private failWith(status: number, reason: string): 'failed' {
    this.lastFailure = fail(status, reason);
    return 'failed';
  }

  private operational(key: string, value: string, response: TextPairs): LoginDecision | null {
    if (TARGET_ONLY_KEYS.has(key))
      return fail(LoginStatus.INITIATOR_ERROR, `${key} may only be sent by a target`);
    if (this.seenKeys.has(key)) return fail(LoginStatus.INITIATOR_ERROR, `${key} negotiated twice`);
    this.seenKeys.add(key);
    const parameters = this.parameters;
    const discovery = parameters.sessionType === 'Discovery';
    if (key === 'HeaderDigest' || key === 'DataDigest') {
      const choice = value.split(',').find((option) => option === 'None' || option === 'CRC32C');
      if (choice === undefined) {
        response.push([key, 'Reject']);
        return null;
      }
      if (key === 'HeaderDigest') parameters.headerDigest = choice === 'CRC32C';
      else parameters.dataDigest = choice === 'CRC32C';
      response.push([key, choice]);
      return null;
    }
    if (key === 'MaxRecvDataSegmentLength') {
      const length = parseNumber(value);
      if (length === null || length < 512 || length > 0xffffff) {
        return fail(LoginStatus.INITIATOR_ERROR, `MaxRecvDataSegmentLength=${value} out of range`);
      }
      parameters.initiatorMaxRecvDataSegmentLength = length;
      return null;
    }
    const numeric = NUMERIC_KEYS[key];
    if (numeric !== undefined) {
      const offered = parseNumber(value);
      if (offered === null || offered < numeric.min || offered > numeric.max) {
        response.push([key, 'Reject']);
        return null;
      }
      if (
        discovery &&
        (key === 'MaxBurstLength' || key === 'FirstBurstLength' || key === 'MaxOutstandingR2T')
      ) {
        response.push([key, 'Irrelevant']);
        return null;
      }
      const ours = numeric.ours(this.context.limits);
      const result = numeric.pick === 'min' ? Math.min(offered, ours) : Math.max(offered, ours);
      setNumeric(parameters, key, result);
      response.push([key, String(result)]);
      return null;
    }
    const boolean = BOOLEAN_KEYS[key];
    if (boolean !== undefined) {
      if (value !== 'Yes' && value !== 'No') {
        response.push([key, 'Reject']);
        return null;
      }
      if (discovery && (key === 'ImmediateData' || key === 'InitialR2T')) {
        response.push([key, 'Irrelevant']);
        return null;
      }
      const offered = value === 'Yes';
      const ours = boolean.ours(this.context.limits);
      const result = boolean.rule === 'and' ? offered && ours : offered || ours;
      setBoolean(parameters, key, result);
      response.push([key, result ? 'Yes' : 'No']);
      return null;
    }
    if (key === 'OFMarkInt' || key === 'IFMarkInt') {
      response.push([key, 'Irrelevant']);
      return null;
    }
    response.push([key, 'NotUnderstood']);
    return null;
  }
}

function fail(status: number, reason: string): LoginDecision {
  return { kind: 'fail', status, reason };
}

function setNumeric(parameters: SessionParameters, key: string, value: number): void {
  switch (key) {
    case 'MaxBurstLength':
      parameters.maxBurstLength = value;
      break;
    case 'FirstBurstLength':
      parameters.firstBurstLength = value;
      break;
    case 'MaxOutstandingR2T':
      parameters.maxOutstandingR2T = value;
      break;
    case 'MaxConnections':
      parameters.maxConnections = value;
      break;
    case 'ErrorRecoveryLevel':
      parameters.errorRecoveryLevel = value;
      break;
    case 'DefaultTime2Wait':
      parameters.defaultTime2Wait = value;
      break;
    case 'DefaultTime2Retain':
      parameters.defaultTime2Retain = value;
      break;
  }
}

function setBoolean(parameters: SessionParameters, key: string, value: boolean): void {
  switch (key) {
    case 'ImmediateData':
      parameters.immediateData = value;
      break;
    case 'InitialR2T':
      parameters.initialR2T = value;
      break;
    case 'DataPDUInOrder':
      parameters.dataPDUInOrder = value;
      break;
    case 'DataSequenceInOrder':
      parameters.dataSequenceInOrder = value;
      break;
  }
}
