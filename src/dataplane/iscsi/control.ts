import type { CommandFlow } from './command-flow.ts';
import { Flag, Opcode, type PduHeader, RESERVED_TAG, RejectReason, serialLessThan } from './pdu.ts';
import type { IscsiSession, VolumeEntry } from './session.ts';
import { encodeTextKeys, MAX_TEXT_BYTES, parseTextKeys, type TextPairs } from './text.ts';

/** Task management functions (RFC 7143 §11.5.1) and responses (§11.6.1). */
export const TaskFunction = {
  ABORT_TASK: 1,
  ABORT_TASK_SET: 2,
  CLEAR_ACA: 3,
  CLEAR_TASK_SET: 4,
  LOGICAL_UNIT_RESET: 5,
  TARGET_WARM_RESET: 6,
  TARGET_COLD_RESET: 7,
  TASK_REASSIGN: 8,
} as const;

export const TaskResponse = {
  FUNCTION_COMPLETE: 0,
  TASK_DOES_NOT_EXIST: 1,
  LUN_DOES_NOT_EXIST: 2,
  TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED: 4,
  FUNCTION_NOT_SUPPORTED: 5,
  FUNCTION_REJECTED: 255,
} as const;

/** What control PDU handling needs from a connection in full feature phase. */
export interface ControlContext {
  readonly session: IscsiSession;
  readonly flow: CommandFlow | null;
  readonly pingTag: number;
  /** Builds a response header with StatSN (taken or current), ExpCmdSN and MaxCmdSN filled in. */
  responseHeader(opcode: number, takeStatSN: boolean): PduHeader;
  send(header: PduHeader, data: Buffer | null): void;
  reject(header: PduHeader, rejectReason: number, reason: string): void;
  checkCmdSN(header: PduHeader): 'accept' | 'ignore';
  pingAnswered(): void;
  /** Ends the connection after the logout response is written. */
  logout(): void;
  isOpen(): boolean;
  log(message: string, fields?: Record<string, unknown>): void;
  /** SendTargets answers. */
  targets(): Iterable<VolumeEntry>;
  portalAddress(): string;
  resetLogicalUnit(volume: VolumeEntry): Promise<void>;
  clearTaskSet(volume: VolumeEntry): Promise<void>;
  resetTarget(volume: VolumeEntry): Promise<void>;
  /** Text continuation state (RFC 7143 §11.10.2): response bytes still to send, and the request text. */
  textState: { pending: Buffer | null; pendingTag: number; request: Buffer[]; requestBytes: number };
}

// ---- NOP-Out ---------------------------------------------------------------------------------

export function handleNopOut(context: ControlContext, header: PduHeader, data: Buffer | null): void {
  const initiatorTaskTag = header.initiatorTaskTag;
  const transferTag = header.targetTransferTag;
  if (initiatorTaskTag === RESERVED_TAG) {
    // No response expected: an answer to our NOP-In ping, or a bare ExpStatSN update.
    if (!header.immediate) {
      context.reject(header, RejectReason.PROTOCOL_ERROR, 'NOP-Out without ITT must be immediate');
      return;
    }
    if (transferTag !== RESERVED_TAG && transferTag === context.pingTag) context.pingAnswered();
    return;
  }
  if (transferTag !== RESERVED_TAG) {
    context.reject(header, RejectReason.INVALID_PDU_FIELD, 'NOP-Out ping with a target transfer tag');
    return;
  }
  if (context.checkCmdSN(header) === 'ignore') return;
  const limit = context.session.parameters.initiatorMaxRecvDataSegmentLength;
  const echo =
    data === null || data.length === 0 ? null : Buffer.from(data.subarray(0, Math.min(data.length, limit)));
  const response = context.responseHeader(Opcode.NOP_IN, true);
  response.flags = Flag.FINAL;
  response.bytes.set(header.lunBytes(), 8);
  response.initiatorTaskTag = initiatorTaskTag;
  response.targetTransferTag = RESERVED_TAG;
  context.send(response, echo);
}

// ---- Text (SendTargets) ------------------------------------------------------------------------

export function handleText(context: ControlContext, header: PduHeader, data: Buffer | null): void {
  const state = context.textState;
  const transferTag = header.targetTransferTag;
  if (transferTag !== RESERVED_TAG) {
    // The initiator asks for the next part of a long response.
    if (state.pending === null || transferTag !== state.pendingTag) {
      context.reject(header, RejectReason.INVALID_PDU_FIELD, 'Text Request continues nothing');
      return;
    }
    if (context.checkCmdSN(header) === 'ignore') return;
    const pending = state.pending;
    state.pending = null;
    sendText(context, header.initiatorTaskTag, pending);
    return;
  }
  if (context.checkCmdSN(header) === 'ignore') return;
  const continues = (header.flags & 0x40) !== 0;
  if (data !== null && data.length > 0) {
    if (state.requestBytes + data.length > MAX_TEXT_BYTES) {
      state.request = [];
      state.requestBytes = 0;
      context.reject(header, RejectReason.PROTOCOL_ERROR, 'Text Request longer than 64 KiB');
      return;
    }
    state.request.push(Buffer.from(data));
    state.requestBytes += data.length;
  }
  if (continues) {
    const response = context.responseHeader(Opcode.TEXT_RESPONSE, true);
    response.initiatorTaskTag = header.initiatorTaskTag;
    response.targetTransferTag = RESERVED_TAG;
    context.send(response, null);
    return;
  }
  const text = Buffer.concat(state.request);
  state.request = [];
  state.requestBytes = 0;
  const parsed = parseTextKeys(text);
  if (!parsed.ok) {
    context.reject(header, RejectReason.PROTOCOL_ERROR, parsed.reason);
    return;
  }
  const answer: TextPairs = [];
  for (const [key, value] of parsed.pairs) {
    if (key === 'SendTargets') answer.push(...sendTargets(context, value));
    else answer.push([key, 'NotUnderstood']);
  }
  sendText(context, header.initiatorTaskTag, encodeTextKeys(answer));
}

function sendTargets(context: ControlContext, value: string): TextPairs {
  const session = context.session;
  const pairs: TextPairs = [];
  for (const volume of context.targets()) {
    const wanted =
      value === 'All'
        ? session.isDiscovery || volume === session.volume
        : value === ''
          ? volume === session.volume
          : value === volume.targetName;
    if (!wanted) continue;
    pairs.push(['TargetName', volume.targetName]);
    pairs.push(['TargetAddress', context.portalAddress()]);
  }
  return pairs;
}

function sendText(context: ControlContext, initiatorTaskTag: number, text: Buffer): void {
  const state = context.textState;
  const limit = context.session.parameters.initiatorMaxRecvDataSegmentLength;
  const response = context.responseHeader(Opcode.TEXT_RESPONSE, true);
  response.initiatorTaskTag = initiatorTaskTag;
  if (text.length <= limit) {
    response.flags = Flag.FINAL;
    response.targetTransferTag = RESERVED_TAG;
    context.send(response, text.length === 0 ? null : text);
    return;
  }
  state.pendingTag = (state.pendingTag + 1) & 0x7fffffff || 1;
  state.pending = text.subarray(limit);
  response.flags = 0x40; // C: more follows
  response.targetTransferTag = state.pendingTag;
  context.send(response, text.subarray(0, limit));
}

// ---- Logout ----------------------------------------------------------------------------------

/** Returns true when the connection will close after the logout response. */
export function handleLogout(context: ControlContext, header: PduHeader, connectionId: number): boolean {
  if (context.checkCmdSN(header) === 'ignore') return false;
  const reason = header.flags & 0x7f;
  let response = 0; // closed successfully
  if (reason === 2)
    response = 2; // connection recovery is not supported (ErrorRecoveryLevel 0)
  else if (reason === 1 && header.connectionId !== connectionId)
    response = 1; // CID not found
  else if (reason > 2) {
    context.reject(header, RejectReason.INVALID_PDU_FIELD, `logout reason ${reason}`);
    return false;
  }
  const initiatorTaskTag = header.initiatorTaskTag;
  const send = (): void => {
    if (!context.isOpen()) return;
    const pdu = context.responseHeader(Opcode.LOGOUT_RESPONSE, true);
    pdu.flags = Flag.FINAL;
    pdu.byte2 = response;
    pdu.initiatorTaskTag = initiatorTaskTag;
    pdu.bytes.writeUInt16BE(0, 40); // Time2Wait
    pdu.bytes.writeUInt16BE(0, 42); // Time2Retain
    context.send(pdu, null);
    if (response === 0) context.logout();
  };
  if (response !== 0 || context.flow === null) {
    send();
    return response === 0;
  }
  // Tasks end before the connection does (their responses are no longer sent).
  context.flow.abortAll().then(send);
  return true;
}

// ---- Task management ------------------------------------------------------------------------

export function handleTaskManagement(context: ControlContext, header: PduHeader): void {
  if (context.checkCmdSN(header) === 'ignore') return;
  const session = context.session;
  const flow = context.flow;
  const volume = session.volume;
  const taskFunction = header.flags & 0x7f;
  const initiatorTaskTag = header.initiatorTaskTag;
  const referencedTag = header.targetTransferTag;
  const referencedCmdSN = header.refCmdSN;
  const lun = header.lunIsComplex ? 0xffff : header.lun;
  const respond = (code: number): void => {
    if (!context.isOpen()) return;
    const pdu = context.responseHeader(Opcode.TASK_MANAGEMENT_RESPONSE, true);
    pdu.flags = Flag.FINAL;
    pdu.byte2 = code;
    pdu.initiatorTaskTag = initiatorTaskTag;
    context.send(pdu, null);
  };
  const after = (wait: Promise<void>): void => {
    wait.then(() => respond(TaskResponse.FUNCTION_COMPLETE));
  };
  if (flow === null || volume === null) {
    respond(TaskResponse.FUNCTION_REJECTED);
    return;
  }
  context.log('task management', { function: taskFunction, referencedTag, lun });
  switch (taskFunction) {
    case TaskFunction.ABORT_TASK: {
      const result = flow.abortTask(referencedTag);
      if (result !== 'not-found') {
        after(result);
        return;
      }
      // Not found: if its CmdSN is still ahead of us it will be ignored as done (RFC 7143 §11.5.1).
      const ahead = !serialLessThan(referencedCmdSN, session.expCmdSN);
      respond(ahead ? TaskResponse.FUNCTION_COMPLETE : TaskResponse.TASK_DOES_NOT_EXIST);
      return;
    }
    case TaskFunction.ABORT_TASK_SET:
      if (lun !== 0) {
        respond(TaskResponse.LUN_DOES_NOT_EXIST);
        return;
      }
      after(flow.abortAll(lun));
      return;
    case TaskFunction.CLEAR_TASK_SET:
      if (lun !== 0) {
        respond(TaskResponse.LUN_DOES_NOT_EXIST);
        return;
      }
      after(context.clearTaskSet(volume));
      return;
    case TaskFunction.LOGICAL_UNIT_RESET:
      if (lun !== 0) {
        respond(TaskResponse.LUN_DOES_NOT_EXIST);
        return;
      }
      after(context.resetLogicalUnit(volume));
      return;
    case TaskFunction.TARGET_WARM_RESET:
      after(context.resetTarget(volume));
      return;
    case TaskFunction.TASK_REASSIGN:
      respond(TaskResponse.TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED);
      return;
    case TaskFunction.CLEAR_ACA:
    case TaskFunction.TARGET_COLD_RESET:
      respond(TaskResponse.FUNCTION_NOT_SUPPORTED);
      return;
    default:
      respond(TaskResponse.FUNCTION_REJECTED);
      return;
  }
}
