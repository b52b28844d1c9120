/**
 * Login (security and operational negotiation, CHAP), text requests and logout: the control
 * requests of an initiator connection, one at a time, each matched to its response.
 */
import { HornbillError } from '../../../errors.ts';
import { Flag, Opcode, opcodeName, PduHeader, RESERVED_TAG } from '../pdu.ts';
import { encodeTextKeys, parseTextKeys, type TextPairs } from '../text.ts';
import { CommandConnection } from './command-connection.ts';
import {
  applyOperationalAnswers,
  defaultNegotiated,
  InitiatorChap,
  type InitiatorLoginOptions,
  loginError,
  operationalKeys,
} from './login.ts';

/** Login, text and logout on top of `CommandConnection`. */
export abstract class ControlConnection extends CommandConnection {
  // ---- login and logout ---------------------------------------------------------------------

  private loginOptions(): InitiatorLoginOptions {
    const options = this.options;
    return {
      initiatorName: options.initiatorName ?? 'iqn.2026-11.io.hornbill:initiator',
      targetName: options.targetName,
      headerDigest: options.headerDigest ?? false,
      dataDigest: options.dataDigest ?? false,
      maxRecvDataSegmentLength: options.maxRecvDataSegmentLength ?? 262144,
      maxBurstLength: options.maxBurstLength ?? 1048576,
      firstBurstLength: options.firstBurstLength ?? 262144,
      immediateData: options.immediateData ?? true,
      initialR2T: options.initialR2T ?? false,
      chap: options.chap ?? null,
    };
  }

  protected async login(): Promise<void> {
    const options = this.loginOptions();
    const names: TextPairs = [
      ['InitiatorName', options.initiatorName],
      ['SessionType', options.targetName === null ? 'Discovery' : 'Normal'],
    ];
    if (options.targetName !== null) names.push(['TargetName', options.targetName]);
    // Security stage.
    const chap = options.chap === null ? null : new InitiatorChap(options.chap);
    let answer = await this.loginStep(0, 1, true, [
      ...names,
      ['AuthMethod', chap === null ? 'None' : 'CHAP,None'],
    ]);
    if (chap !== null) {
      if (answer.keys.get('AuthMethod') !== 'CHAP') throw loginError('the target did not choose CHAP');
      answer = await this.loginStep(0, 1, false, [['CHAP_A', '5']]);
      answer = await this.loginStep(0, 1, true, chap.respond(answer.keys));
      chap.verifyTarget(answer.keys);
    }
    for (let step = 0; !answer.transit; step++) {
      if (step > 8) throw loginError('the target never left the security stage');
      answer = await this.loginStep(0, 1, true, []);
    }
    // Operational stage.
    const parameters = defaultNegotiated();
    answer = await this.loginStep(1, 3, true, operationalKeys(options));
    applyOperationalAnswers(parameters, answer.keys, options);
    for (let step = 0; !answer.transit; step++) {
      if (step > 8) throw loginError('the target never finished the operational stage');
      answer = await this.loginStep(1, 3, true, []);
      applyOperationalAnswers(parameters, answer.keys, options);
    }
    this.negotiated = parameters;
    this.receiver.headerDigest = parameters.headerDigest;
    this.receiver.dataDigest = parameters.dataDigest;
    this.sender.headerDigest = parameters.headerDigest;
    this.sender.dataDigest = parameters.dataDigest;
  }

  private async loginStep(
    currentStage: number,
    nextStage: number,
    transit: boolean,
    keys: TextPairs,
  ): Promise<{ keys: Map<string, string>; transit: boolean }> {
    const header = this.header.clear();
    header.opcode = Opcode.LOGIN_REQUEST;
    header.immediate = true;
    header.flags = (transit ? Flag.TRANSIT : 0) | (currentStage << 2) | (transit ? nextStage : 0);
    header.bytes.set(this.isid, 8);
    header.tsih = this.tsih;
    header.initiatorTaskTag = this.takeTag();
    header.connectionId = 1;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    const { header: response, data } = await this.control(
      Opcode.LOGIN_RESPONSE,
      header,
      encodeTextKeys(keys),
    );
    const status = response.loginStatus;
    if (status !== 0) {
      throw loginError(`login refused with status 0x${status.toString(16).padStart(4, '0')}`, { status });
    }
    this.tsih = response.tsih;
    const parsed = parseTextKeys(data);
    if (!parsed.ok) throw loginError(`unreadable login response: ${parsed.reason}`);
    return { keys: new Map(parsed.pairs), transit: (response.flags & Flag.TRANSIT) !== 0 };
  }

  /** Text request/response, following continuations (RFC 7143 §11.10). */
  async text(keys: TextPairs): Promise<TextPairs> {
    const parts: Buffer[] = [];
    let transferTag = RESERVED_TAG;
    let payload: Buffer | null = encodeTextKeys(keys);
    for (let round = 0; round < 64; round++) {
      const header = this.header.clear();
      header.opcode = Opcode.TEXT_REQUEST;
      header.immediate = true;
      header.flags = Flag.FINAL;
      header.initiatorTaskTag = this.takeTag();
      header.targetTransferTag = transferTag;
      header.cmdSN = this.cmdSN;
      header.expStatSN = this.expStatSN;
      const { header: response, data } = await this.control(Opcode.TEXT_RESPONSE, header, payload);
      parts.push(data);
      payload = null;
      if ((response.flags & 0x40) === 0) {
        const parsed = parseTextKeys(Buffer.concat(parts));
        if (!parsed.ok)
          throw new HornbillError('ISCSI_PROTOCOL_ERROR', `unreadable text response: ${parsed.reason}`);
        return parsed.pairs;
      }
      transferTag = response.targetTransferTag;
    }
    throw new HornbillError('ISCSI_PROTOCOL_ERROR', 'text response never ended');
  }

  /** Logs out (closing the session) and closes the socket. */
  async logout(): Promise<void> {
    if (this.isClosed) return;
    const header = this.header.clear();
    header.opcode = Opcode.LOGOUT_REQUEST;
    header.immediate = true;
    header.flags = Flag.FINAL; // reason 0: close the session
    header.initiatorTaskTag = this.takeTag();
    header.connectionId = 1;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    try {
      await this.control(Opcode.LOGOUT_RESPONSE, header, null);
    } finally {
      this.destroy();
    }
  }

  private control(
    opcode: number,
    header: PduHeader,
    data: Buffer | null,
  ): Promise<{ header: PduHeader; data: Buffer }> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    if (this.controlWaiter !== null) {
      return Promise.reject(new HornbillError('ISCSI_PROTOCOL_ERROR', 'one control request at a time'));
    }
    return new Promise((resolve, reject) => {
      this.controlWaiter = { opcode, resolve, reject, deadlineMs: Date.now() + this.timeoutMs };
      this.sender.send(header, data !== null && data.length > 0 ? data : null);
    });
  }

  protected resolveControl(header: PduHeader, data: Buffer | null, error: HornbillError | null): void {
    const waiter = this.controlWaiter;
    if (waiter === null) return;
    if (error === null && header.opcode !== waiter.opcode) {
      this.protocolFailure(`${opcodeName(header.opcode)} where ${opcodeName(waiter.opcode)} was expected`);
      return;
    }
    this.controlWaiter = null;
    if (error !== null) waiter.reject(error);
    else
      waiter.resolve({
        header: new PduHeader(Buffer.from(header.bytes)),
        data: data === null ? Buffer.alloc(0) : Buffer.from(data),
      });
  }
}
