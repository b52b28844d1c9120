import { ScsiOpcode, ServiceAction } from './constants.ts';

/**
 * How a command touches the medium, for persistent reservation conflicts (SPC-4 table 66,
 * SBC-3 table 13): `always` never conflicts, `read` conflicts only with exclusive-access
 * reservations, `write` conflicts with every reservation type the nexus does not hold.
 */
export type AccessClass = 'always' | 'read' | 'write';

export interface CommandDescriptor {
  readonly name: string;
  readonly opcode: number;
  /** Service action, for commands that have one (reported with SERVACTV). */
  readonly serviceAction: number | null;
  /** CDB usage data (SPC-4 6.35.3): byte 0 is the opcode, then a mask of the bits examined. */
  readonly usage: readonly number[];
  readonly access: AccessClass;
  /** Nominal and recommended timeouts (seconds) for the command timeouts descriptor. */
  readonly timeoutSeconds: number;
}

const lba32 = [0xff, 0xff, 0xff, 0xff];
const lba64 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function command(
  name: string,
  opcode: number,
  serviceAction: number | null,
  usage: number[],
  access: AccessClass,
  timeoutSeconds = 30,
): CommandDescriptor {
  return { name, opcode, serviceAction, usage, access, timeoutSeconds };
}

/** Every command this logical unit implements, in opcode order. */
export const COMMANDS: readonly CommandDescriptor[] = [
  command('TEST UNIT READY', ScsiOpcode.TEST_UNIT_READY, null, [0x00, 0, 0, 0, 0, 0], 'always'),
  command('REQUEST SENSE', ScsiOpcode.REQUEST_SENSE, null, [0x03, 0x01, 0, 0, 0xff, 0], 'always'),
  command('READ(6)', ScsiOpcode.READ_6, null, [0x08, 0x1f, 0xff, 0xff, 0xff, 0], 'read'),
  command('WRITE(6)', ScsiOpcode.WRITE_6, null, [0x0a, 0x1f, 0xff, 0xff, 0xff, 0], 'write'),
  command('INQUIRY', ScsiOpcode.INQUIRY, null, [0x12, 0x01, 0xff, 0xff, 0xff, 0], 'always'),
  command('MODE SELECT(6)', ScsiOpcode.MODE_SELECT_6, null, [0x15, 0x11, 0, 0, 0xff, 0], 'write'),
  command('MODE SENSE(6)', ScsiOpcode.MODE_SENSE_6, null, [0x1a, 0x08, 0xff, 0xff, 0xff, 0], 'read'),
  command('START STOP UNIT', ScsiOpcode.START_STOP_UNIT, null, [0x1b, 0x01, 0, 0x0f, 0xf7, 0], 'always'),
  command(
    'READ CAPACITY(10)',
    ScsiOpcode.READ_CAPACITY_10,
    null,
    [0x25, 0, ...lba32, 0, 0, 0x01, 0],
    'always',
  ),
  command('READ(10)', ScsiOpcode.READ_10, null, [0x28, 0xf8, ...lba32, 0, 0xff, 0xff, 0], 'read'),
  command('WRITE(10)', ScsiOpcode.WRITE_10, null, [0x2a, 0xf8, ...lba32, 0, 0xff, 0xff, 0], 'write'),
  command(
    'WRITE AND VERIFY(10)',
    ScsiOpcode.WRITE_AND_VERIFY_10,
    null,
    [0x2e, 0xf2, ...lba32, 0, 0xff, 0xff, 0],
    'write',
  ),
  command('VERIFY(10)', ScsiOpcode.VERIFY_10, null, [0x2f, 0xf6, ...lba32, 0, 0xff, 0xff, 0], 'read'),
  command('PRE-FETCH(10)', ScsiOpcode.PRE_FETCH_10, null, [0x34, 0x02, ...lba32, 0, 0xff, 0xff, 0], 'read'),
  command(
    'SYNCHRONIZE CACHE(10)',
    ScsiOpcode.SYNCHRONIZE_CACHE_10,
    null,
    [0x35, 0x02, ...lba32, 0, 0xff, 0xff, 0],
    'write',
    60,
  ),
  command(
    'WRITE SAME(10)',
    ScsiOpcode.WRITE_SAME_10,
    null,
    [0x41, 0xf8, ...lba32, 0, 0xff, 0xff, 0],
    'write',
    60,
  ),
  command('UNMAP', ScsiOpcode.UNMAP, null, [0x42, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0], 'write', 60),
  command(
    'MODE SELECT(10)',
    ScsiOpcode.MODE_SELECT_10,
    null,
    [0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0],
    'write',
  ),
  command(
    'MODE SENSE(10)',
    ScsiOpcode.MODE_SENSE_10,
    null,
    [0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0],
    'read',
  ),
  ...[0, 1, 2, 3].map((serviceAction) =>
    command(
      'PERSISTENT RESERVE IN',
      ScsiOpcode.PERSISTENT_RESERVE_IN,
      serviceAction,
      [0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0],
      'always',
    ),
  ),
  ...[0, 1, 2, 3, 4, 5, 6].map((serviceAction) =>
    command(
      'PERSISTENT RESERVE OUT',
      ScsiOpcode.PERSISTENT_RESERVE_OUT,
      serviceAction,
      [0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0],
      'always',
    ),
  ),
  command('READ(16)', ScsiOpcode.READ_16, null, [0x88, 0xf8, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0], 'read'),
  command(
    'COMPARE AND WRITE',
    ScsiOpcode.COMPARE_AND_WRITE,
    null,
    [0x89, 0xf8, ...lba64, 0, 0, 0, 0xff, 0, 0],
    'write',
  ),
  command(
    'WRITE(16)',
    ScsiOpcode.WRITE_16,
    null,
    [0x8a, 0xf8, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
  ),
  command(
    'WRITE AND VERIFY(16)',
    ScsiOpcode.WRITE_AND_VERIFY_16,
    null,
    [0x8e, 0xf2, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
  ),
  command(
    'VERIFY(16)',
    ScsiOpcode.VERIFY_16,
    null,
    [0x8f, 0xf6, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'read',
  ),
  command(
    'PRE-FETCH(16)',
    ScsiOpcode.PRE_FETCH_16,
    null,
    [0x90, 0x02, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'read',
  ),
  command(
    'SYNCHRONIZE CACHE(16)',
    ScsiOpcode.SYNCHRONIZE_CACHE_16,
    null,
    [0x91, 0x02, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
    60,
  ),
  command(
    'WRITE SAME(16)',
    ScsiOpcode.WRITE_SAME_16,
    null,
    [0x93, 0xf9, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
    60,
  ),
  command(
    'READ CAPACITY(16)',
    ScsiOpcode.SERVICE_ACTION_IN_16,
    ServiceAction.READ_CAPACITY_16,
    [0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'always',
  ),
  command(
    'GET LBA STATUS',
    ScsiOpcode.SERVICE_ACTION_IN_16,
    ServiceAction.GET_LBA_STATUS,
    [0x9e, 0x1f, ...lba64, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'read',
  ),
  command(
    'REPORT LUNS',
    ScsiOpcode.REPORT_LUNS,
    null,
    [0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'always',
  ),
  command(
    'REPORT SUPPORTED OPERATION CODES',
    ScsiOpcode.MAINTENANCE_IN,
    ServiceAction.REPORT_SUPPORTED_OPERATION_CODES,
    [0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'always',
  ),
  command('READ(12)', ScsiOpcode.READ_12, null, [0xa8, 0xf8, ...lba32, 0xff, 0xff, 0xff, 0xff, 0, 0], 'read'),
  command(
    'WRITE(12)',
    ScsiOpcode.WRITE_12,
    null,
    [0xaa, 0xf8, ...lba32, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
  ),
  command(
    'WRITE AND VERIFY(12)',
    ScsiOpcode.WRITE_AND_VERIFY_12,
    null,
    [0xae, 0xf2, ...lba32, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'write',
  ),
  command(
    'VERIFY(12)',
    ScsiOpcode.VERIFY_12,
    null,
    [0xaf, 0xf6, ...lba32, 0xff, 0xff, 0xff, 0xff, 0, 0],
    'read',
  ),
];

/** Opcodes whose commands are told apart by a service action in CDB byte 1, bits 0-4. */
const SERVICE_ACTION_OPCODES = new Set<number>([
  ScsiOpcode.PERSISTENT_RESERVE_IN,
  ScsiOpcode.PERSISTENT_RESERVE_OUT,
  ScsiOpcode.SERVICE_ACTION_IN_16,
  ScsiOpcode.MAINTENANCE_IN,
]);

/** Lookup by opcode (and service action): index = opcode * 32 + service action. */
const byKey: (CommandDescriptor | undefined)[] = new Array(256 * 32);
const opcodeKnown = new Uint8Array(256);
for (const descriptor of COMMANDS) {
  byKey[descriptor.opcode * 32 + (descriptor.serviceAction ?? 0)] = descriptor;
  opcodeKnown[descriptor.opcode] = 1;
}

export function hasServiceAction(opcode: number): boolean {
  return SERVICE_ACTION_OPCODES.has(opcode);
}

export function isOpcodeKnown(opcode: number): boolean {
  return opcodeKnown[opcode] === 1;
}

/** The descriptor for a CDB, or undefined when the opcode (or its service action) is not supported. */
export function lookupCommand(opcode: number, serviceAction: number): CommandDescriptor | undefined {
  return byKey[opcode * 32 + (hasServiceAction(opcode) ? serviceAction & 0x1f : 0)];
}
