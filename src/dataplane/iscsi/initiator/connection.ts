/**
 * The initiator connection as a whole: the receiving side — PDU dispatch, Data-In, SCSI
 * responses, R2T, NOP-In, reject, async messages and the sequence numbers they carry.
 */
import { HornbillError } from '../../../errors.ts';
import { Flag, Opcode, opcodeName, type PduHeader, RESERVED_TAG, serialLessThan } from '../pdu.ts';
import type { ReceiveErrorKind } from '../receiver.ts';
import { ControlConnection } from './control-connection.ts';
import type { ScsiResult } from './scsi-request.ts';

/**
 * The protocol half of the initiator (RFC 7143): one connection, login with negotiation
 * (digests and CHAP optional), pipelined SCSI commands matched by ITT, immediate /
 * unsolicited / R2T-solicited Data-Out, Data-In straight into the caller's buffer, NOP-In
 * answers, text requests, logout. `IscsiInitiator` adds connecting and block commands.
 *
 * Per command it allocates nothing beyond the views of the caller's buffers (commands and
 * results are pooled); the promise helpers add one promise each.
 */
export class InitiatorConnection extends ControlConnection {
  // ---- receiving -----------------------------------------------------------------------------

  override headerReceived(header: PduHeader): boolean {
    if (header.opcode === Opcode.DATA_IN) {
      const pending = this.inFlight.get(header.initiatorTaskTag);
      const target = pending?.dataIn ?? null;
      const offset = header.bufferOffset;
      if (target === null || offset + header.dataSegmentLength > target.length) {
        this.protocolFailure(`Data-In outside the buffer of ITT 0x${header.initiatorTaskTag.toString(16)}`);
        return false;
      }
      this.receiver.directData(target, offset, header.dataSegmentLength);
    }
    return true;
  }

  override pduReceived(header: PduHeader, data: Buffer | null): boolean {
    this.updateSequenceNumbers(header);
    switch (header.opcode) {
      case Opcode.DATA_IN:
        this.dataIn(header);
        break;
      case Opcode.SCSI_RESPONSE:
        this.scsiResponse(header, data);
        break;
      case Opcode.READY_TO_TRANSFER: {
        const pending = this.inFlight.get(header.initiatorTaskTag);
        if (pending?.dataOut == null) {
          this.protocolFailure('R2T for a command without data-out');
          return false;
        }
        const offset = header.bufferOffset;
        const length = header.desiredDataTransferLength;
        if (offset + length > pending.dataOut.length) {
          this.protocolFailure('R2T beyond the data-out buffer');
          return false;
        }
        this.sendDataOut(pending, header.targetTransferTag, offset, length);
        break;
      }
      case Opcode.NOP_IN:
        if (header.targetTransferTag !== RESERVED_TAG) this.answerPing(header);
        break;
      case Opcode.REJECT: {
        const rejected = data !== null && data.length >= 48 ? data.readUInt32BE(16) : RESERVED_TAG;
        const pending = this.inFlight.get(rejected);
        const error = new HornbillError(
          'ISCSI_PROTOCOL_ERROR',
          `the target rejected a PDU (reason 0x${header.byte2.toString(16)})`,
          {
            reason: header.byte2,
          },
        );
        if (pending !== undefined) this.finish(pending, error);
        else if (this.controlWaiter !== null) this.resolveControl(header, data, error);
        break;
      }
      case Opcode.ASYNC_MESSAGE:
        if (header.bytes[36] >= 1 && header.bytes[36] <= 3) {
          this.fail(
            new HornbillError(
              'ISCSI_CONNECTION_CLOSED',
              `the target asked to end the connection (event ${header.bytes[36]})`,
            ),
          );
          this.socket.destroy();
          return false;
        }
        break;
      case Opcode.LOGIN_RESPONSE:
      case Opcode.TEXT_RESPONSE:
      case Opcode.LOGOUT_RESPONSE:
      case Opcode.TASK_MANAGEMENT_RESPONSE:
        this.resolveControl(header, data, null);
        break;
      default:
        this.protocolFailure(`unexpected ${opcodeName(header.opcode)} from the target`);
        return false;
    }
    return this.closedError === null;
  }

  override receiveError(kind: ReceiveErrorKind, _header: PduHeader, reason: string): void {
    this.fail(new HornbillError('ISCSI_PROTOCOL_ERROR', `${kind}: ${reason}`));
    this.socket.destroy();
  }

  private dataIn(header: PduHeader): void {
    const pending = this.inFlight.get(header.initiatorTaskTag);
    if (pending === undefined) return;
    pending.result.dataInBytes = Math.max(
      pending.result.dataInBytes,
      header.bufferOffset + header.dataSegmentLength,
    );
    if ((header.flags & Flag.STATUS) === 0) return;
    pending.result.status = header.byte3;
    this.applyResidual(pending.result, header);
    this.finish(pending, null);
  }

  private scsiResponse(header: PduHeader, data: Buffer | null): void {
    const pending = this.inFlight.get(header.initiatorTaskTag);
    if (pending === undefined) return;
    const result = pending.result;
    if (header.byte2 !== 0) {
      this.finish(
        pending,
        new HornbillError('ISCSI_PROTOCOL_ERROR', `target failure (response 0x${header.byte2.toString(16)})`),
      );
      return;
    }
    result.status = header.byte3;
    if (data !== null && data.length >= 2) {
      const senseBytes = Math.min(data.readUInt16BE(0), data.length - 2, result.sense.length);
      data.copy(result.sense, 0, 2, 2 + senseBytes);
      result.senseLength = senseBytes;
    }
    this.applyResidual(result, header);
    this.finish(pending, null);
  }

  private applyResidual(result: ScsiResult, header: PduHeader): void {
    result.overflow = (header.flags & Flag.OVERFLOW) !== 0;
    result.underflow = (header.flags & Flag.UNDERFLOW) !== 0;
    result.residual = result.overflow || result.underflow ? header.residualCount : 0;
  }

  private updateSequenceNumbers(header: PduHeader): void {
    const opcode = header.opcode;
    if (opcode === Opcode.LOGIN_RESPONSE && header.loginStatus !== 0) return;
    const statusBearing =
      opcode !== Opcode.READY_TO_TRANSFER &&
      !(opcode === Opcode.DATA_IN && (header.flags & Flag.STATUS) === 0) &&
      !(opcode === Opcode.NOP_IN && header.initiatorTaskTag === RESERVED_TAG);
    if (statusBearing) {
      const next = (header.statSN + 1) >>> 0;
      if (opcode === Opcode.LOGIN_RESPONSE || serialLessThan(this.expStatSN, next)) this.expStatSN = next;
    }
    const expCmdSN = header.expCmdSN;
    const maxCmdSN = header.maxCmdSN;
    // A window with MaxCmdSN < ExpCmdSN - 1 is invalid and ignored (RFC 7143 §4.2.2.1).
    if (serialLessThan(maxCmdSN, (expCmdSN - 1) >>> 0)) return;
    if (opcode === Opcode.LOGIN_RESPONSE) {
      this.cmdSN = expCmdSN;
      this.maxCmdSN = maxCmdSN;
      return;
    }
    if (serialLessThan(this.maxCmdSN, maxCmdSN)) {
      this.maxCmdSN = maxCmdSN;
      this.startWaiting();
    }
  }

  private answerPing(ping: PduHeader): void {
    const header = this.header.clear();
    header.opcode = Opcode.NOP_OUT;
    header.immediate = true;
    header.flags = Flag.FINAL;
    header.bytes.set(ping.lunBytes(), 8);
    header.initiatorTaskTag = RESERVED_TAG;
    header.targetTransferTag = ping.targetTransferTag;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    this.sender.send(header, null);
  }
}
