import type { ConnectionSettings } from './connection.ts';
import {
  LoginNegotiation,
  type LoginRequestView,
  LoginStatus,
  type SessionParameters,
  Stage,
} from './login.ts';
import { Flag, Opcode, PduHeader } from './pdu.ts';
import type { PduSender } from './sender.ts';
import { IscsiSession, type VolumeEntry } from './session.ts';
import { encodeTextKeys, MAX_TEXT_BYTES, parseTextKeys } from './text.ts';

/** Login PDUs may carry at most 8192 bytes of data (the default MaxRecvDataSegmentLength). */
export const LOGIN_DATA_SEGMENT_BYTES = 8192;

/** What the login phase needs from its connection and target. */
export interface LoginPhaseHost {
  readonly settings: ConnectionSettings;
  readonly sender: PduSender;
  findVolume(targetName: string): VolumeEntry | undefined;
  openSession(
    parameters: SessionParameters,
    isid: string,
    tsih: number,
    cmdSN: number,
  ): IscsiSession | { status: number; reason: string };
  /** The first login response starts the connection's StatSN at the initiator's ExpStatSN. */
  setStatSN(value: number): void;
  takeStatSN(): number;
}

export type LoginOutcome =
  | { kind: 'continue' }
  | { kind: 'failed'; reason: string }
  | { kind: 'complete'; session: IscsiSession; parameters: SessionParameters };

const CONTINUE: LoginOutcome = { kind: 'continue' };

interface LoginState {
  negotiation: LoginNegotiation;
  isid: Buffer;
  tsih: number;
  cmdSN: number;
  text: Buffer[];
  textBytes: number;
}

/**
 * The login phase of one connection (RFC 7143 §6, §11.12-11.13): Login Requests (continued
 * text reassembled up to 64 KiB), version and ISID/TSIH checks, negotiation, and the Login
 * Responses, ending with a session or a login failure.
 */
export class LoginPhase {
  connectionId = 0;
  private readonly host: LoginPhaseHost;
  private readonly response = new PduHeader();
  private login: LoginState | null = null;

  constructor(host: LoginPhaseHost) {
    this.host = host;
  }

  /** Handles one Login Request; says whether login goes on, failed, or completed. */
  handle(header: PduHeader, data: Buffer | null): LoginOutcome {
    const flags = header.flags;
    const transit = (flags & Flag.TRANSIT) !== 0;
    const continues = (flags & Flag.CONTINUE) !== 0;
    const view: LoginRequestView = {
      currentStage: (flags >> 2) & 0x03,
      nextStage: flags & 0x03,
      transit,
      pairs: [],
    };
    if (this.login === null) {
      this.host.setStatSN(header.expStatSN);
      this.connectionId = header.connectionId;
      this.login = {
        negotiation: new LoginNegotiation({
          limits: this.host.settings.limits,
          chap: this.host.settings.chap,
          portalGroupTag: this.host.settings.portalGroupTag,
          targetExists: (name) => this.host.findVolume(name) !== undefined,
        }),
        isid: Buffer.from(header.isidBytes()),
        tsih: header.tsih,
        cmdSN: header.cmdSN,
        text: [],
        textBytes: 0,
      };
    } else if (!this.login.isid.equals(header.isidBytes()) || this.login.tsih !== header.tsih) {
      return this.loginFailure(header, LoginStatus.INITIATOR_ERROR, 'ISID or TSIH changed during login');
    }
    const login = this.login;
    if (header.byte3 > 0x00) {
      return this.loginFailure(header, LoginStatus.UNSUPPORTED_VERSION, `version-min ${header.byte3}`);
    }
    if (transit && continues) {
      return this.loginFailure(header, LoginStatus.INITIATOR_ERROR, 'T and C both set');
    }
    if (data !== null && data.length > 0) {
      if (login.textBytes + data.length > MAX_TEXT_BYTES) {
        return this.loginFailure(header, LoginStatus.INITIATOR_ERROR, 'login text longer than 64 KiB');
      }
      login.text.push(Buffer.from(data));
      login.textBytes += data.length;
    }
    if (continues) {
      this.sendLoginResponse(header, view.currentStage, 0, false, null, 0);
      return CONTINUE;
    }
    const parsed = parseTextKeys(Buffer.concat(login.text));
    login.text = [];
    login.textBytes = 0;
    if (!parsed.ok) {
      return this.loginFailure(header, LoginStatus.INITIATOR_ERROR, parsed.reason);
    }
    view.pairs = parsed.pairs;
    const decision = login.negotiation.process(view);
    if (decision.kind === 'fail') {
      return this.loginFailure(header, decision.status, decision.reason);
    }
    const text = encodeTextKeys(decision.keys);
    if (text.length > LOGIN_DATA_SEGMENT_BYTES) {
      return this.loginFailure(header, LoginStatus.TARGET_ERROR, 'login response too long');
    }
    if (!decision.transit || decision.nextStage !== Stage.FULL_FEATURE) {
      this.sendLoginResponse(header, view.currentStage, decision.nextStage, decision.transit, text, 0);
      return CONTINUE;
    }
    const parameters = login.negotiation.parameters;
    const opened = this.host.openSession(parameters, login.isid.toString('hex'), login.tsih, login.cmdSN);
    if (!(opened instanceof IscsiSession)) {
      return this.loginFailure(header, opened.status, opened.reason);
    }
    this.sendLoginResponse(header, view.currentStage, Stage.FULL_FEATURE, true, text, opened.tsih);
    this.login = null;
    return { kind: 'complete', session: opened, parameters };
  }

  private sendLoginResponse(
    request: PduHeader,
    currentStage: number,
    nextStage: number,
    transit: boolean,
    text: Buffer | null,
    tsih: number,
    status: number = LoginStatus.SUCCESS,
  ): void {
    const response = this.response.clear();
    response.opcode = Opcode.LOGIN_RESPONSE;
    response.flags = (transit ? Flag.TRANSIT : 0) | (currentStage << 2) | (transit ? nextStage : 0);
    response.byte2 = 0x00; // version-max
    response.byte3 = 0x00; // version-active
    response.bytes.set(request.isidBytes(), 8);
    response.tsih = tsih;
    response.initiatorTaskTag = request.initiatorTaskTag;
    response.statSN = this.host.takeStatSN();
    const cmdSN = this.login?.cmdSN ?? request.cmdSN;
    response.expCmdSN = cmdSN;
    response.maxCmdSN = cmdSN + this.host.settings.commandWindow - 1;
    response.loginStatus = status;
    this.host.sender.send(response, text !== null && text.length > 0 ? text : null);
  }

  private loginFailure(request: PduHeader, status: number, reason: string): LoginOutcome {
    const currentStage = (request.flags >> 2) & 0x03;
    this.sendLoginResponse(request, currentStage <= 1 ? currentStage : 0, 0, false, null, 0, status);
    return { kind: 'failed', reason: `login failed (0x${status.toString(16).padStart(4, '0')}): ${reason}` };
  }
}
