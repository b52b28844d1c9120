import type { ScsiCommand } from './command.ts';
import {
  COMMANDS,
  type CommandDescriptor,
  hasServiceAction,
  isOpcodeKnown,
  lookupCommand,
} from './command-table.ts';
import { invalidFieldInCdb } from './sense.ts';

const TIMEOUTS_DESCRIPTOR_BYTES = 12;

/** REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), reporting options 0-3, with optional timeouts. */
export function reportSupportedOperationCodes(command: ScsiCommand, descriptorSense: boolean): void {
  const cdb = command.cdb;
  const returnTimeouts = (cdb[2] & 0x80) !== 0;
  const reportingOptions = cdb[2] & 0x07;
  const requestedOpcode = cdb[3];
  const requestedServiceAction = cdb.readUInt16BE(4);
  const allocationBytes = cdb.readUInt32BE(6);
  const out = command.buffer!;
  let length: number;
  switch (reportingOptions) {
    case 0:
      length = allCommands(out, returnTimeouts);
      break;
    case 1:
      if (hasServiceAction(requestedOpcode)) {
        invalidFieldInCdb(command, descriptorSense, 2, 2);
        return;
      }
      length = oneCommand(out, lookupCommand(requestedOpcode, 0), returnTimeouts);
      break;
    case 2:
      if (isOpcodeKnown(requestedOpcode) && !hasServiceAction(requestedOpcode)) {
        invalidFieldInCdb(command, descriptorSense, 2, 2);
        return;
      }
      length = oneCommand(
        out,
        requestedServiceAction > 0x1f ? undefined : lookupCommand(requestedOpcode, requestedServiceAction),
        returnTimeouts,
      );
      break;
    case 3: {
      const serviceAction = hasServiceAction(requestedOpcode) ? requestedServiceAction : 0;
      const found =
        serviceAction > 0x1f || (!hasServiceAction(requestedOpcode) && requestedServiceAction !== 0)
          ? undefined
          : lookupCommand(requestedOpcode, serviceAction);
      length = oneCommand(out, found, returnTimeouts);
      break;
    }
    default:
      invalidFieldInCdb(command, descriptorSense, 2, 2);
      return;
  }
  command.dataInBytes = Math.min(length, allocationBytes);
}

function allCommands(out: Buffer, returnTimeouts: boolean): number {
  const descriptorBytes = 8 + (returnTimeouts ? TIMEOUTS_DESCRIPTOR_BYTES : 0);
  let offset = 4;
  for (const descriptor of COMMANDS) {
    if (offset + descriptorBytes > out.length) break;
    out.fill(0, offset, offset + descriptorBytes);
    out[offset] = descriptor.opcode;
    out.writeUInt16BE(descriptor.serviceAction ?? 0, offset + 2);
    out[offset + 5] = (returnTimeouts ? 0x02 : 0) | (descriptor.serviceAction !== null ? 0x01 : 0);
    out.writeUInt16BE(descriptor.usage.length, offset + 6);
    if (returnTimeouts) writeTimeouts(out, offset + 8, descriptor);
    offset += descriptorBytes;
  }
  out.writeUInt32BE(offset - 4, 0);
  return offset;
}

function oneCommand(out: Buffer, descriptor: CommandDescriptor | undefined, returnTimeouts: boolean): number {
  out.fill(0, 0, 4);
  if (descriptor === undefined) {
    out[1] = 0x01; // SUPPORT: not supported
    return 4;
  }
  const cdbBytes = descriptor.usage.length;
  out[1] = (returnTimeouts ? 0x80 : 0) | 0x03; // CTDP, SUPPORT: supported as the standard says
  out.writeUInt16BE(cdbBytes, 2);
  for (let index = 0; index < cdbBytes; index++) out[4 + index] = descriptor.usage[index];
  if (descriptor.serviceAction !== null) out[5] = (out[5] & 0xe0) | descriptor.serviceAction;
  let length = 4 + cdbBytes;
  if (returnTimeouts) {
    writeTimeouts(out, length, descriptor);
    length += TIMEOUTS_DESCRIPTOR_BYTES;
  }
  return length;
}

function writeTimeouts(out: Buffer, offset: number, descriptor: CommandDescriptor): void {
  out.fill(0, offset, offset + TIMEOUTS_DESCRIPTOR_BYTES);
  out.writeUInt16BE(TIMEOUTS_DESCRIPTOR_BYTES - 2, offset);
  out.writeUInt32BE(descriptor.timeoutSeconds, offset + 4);
  out.writeUInt32BE(descriptor.timeoutSeconds, offset + 8);
}
