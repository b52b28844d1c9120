/**
 * Parsers of what host commands print: `iscsiadm -m session -P 3` (and the one-line form),
 * iscsiadm's failures (its exit status is open-iscsi's ISCSI_ERR_* number, its last
 * `iscsiadm:` lines say why), mount(8)'s failures, and /proc/self/mountinfo.
 * Pure functions: test/unit/csi/host-parsers.test.ts feeds them open-iscsi's formats.
 */
import type { ErrorCode } from '../../errors.ts';
import type { IscsiSession, MountEntry } from './types.ts';

/** open-iscsi's include/iscsi_err.h: exit status → name. */
export const ISCSI_ERRORS: Record<number, string> = {
  1: 'ISCSI_ERR',
  2: 'ISCSI_ERR_SESS_NOT_FOUND',
  3: 'ISCSI_ERR_NOMEM',
  4: 'ISCSI_ERR_TRANS',
  5: 'ISCSI_ERR_LOGIN',
  6: 'ISCSI_ERR_IDBM',
  7: 'ISCSI_ERR_INVAL',
  8: 'ISCSI_ERR_TRANS_TIMEOUT',
  9: 'ISCSI_ERR_INTERNAL',
  10: 'ISCSI_ERR_LOGOUT',
  11: 'ISCSI_ERR_PDU_TIMEOUT',
  12: 'ISCSI_ERR_TRANS_NOT_FOUND',
  13: 'ISCSI_ERR_ACCESS',
  14: 'ISCSI_ERR_TRANS_CAPS',
  15: 'ISCSI_ERR_SESS_EXISTS',
  16: 'ISCSI_ERR_INVALID_MGMT_REQ',
  17: 'ISCSI_ERR_ISNS_UNAVAILABLE',
  18: 'ISCSI_ERR_ISCSID_COMM_ERR',
  19: 'ISCSI_ERR_FATAL_LOGIN',
  20: 'ISCSI_ERR_ISCSID_NOTCONN',
  21: 'ISCSI_ERR_NO_OBJS_FOUND',
  22: 'ISCSI_ERR_SYSFS_LOOKUP',
  23: 'ISCSI_ERR_HOST_NOT_FOUND',
  24: 'ISCSI_ERR_LOGIN_AUTH_FAILED',
  25: 'ISCSI_ERR_ISNS_QUERY',
  26: 'ISCSI_ERR_ISNS_REG_FAILED',
  27: 'ISCSI_ERR_OP_NOT_SUPP',
  28: 'ISCSI_ERR_BUSY',
  29: 'ISCSI_ERR_AGAIN',
  30: 'ISCSI_ERR_UNKNOWN_DISCOVERY_TYPE',
  31: 'ISCSI_ERR_CHILD_TERMINATED',
  32: 'ISCSI_ERR_SESSION_NOT_CONNECTED',
};
export const ISCSI_ERR_SESS_EXISTS = 15;
export const ISCSI_ERR_NO_OBJS_FOUND = 21;

export interface IscsiadmFailure {
  exitCode: number;
  /** ISCSI_ERR_TRANS_TIMEOUT, … */
  name: string;
  /** The `iscsiadm:` lines, joined. */
  reason: string;
  /** `initiator reported error (8 - connection timed out)` → 8, when printed. */
  initiatorError?: number;
  code: ErrorCode;
  /** What the operator does about it, when the failure is the host's set-up. */
  fix?: string;
}

/** Failures that mean the host's initiator cannot work at all (seed §4-1: not installed or not running). */
const HOST_SETUP_FAILURES: Record<number, string> = {
  12: 'the iscsi_tcp kernel module is not loaded: run `modprobe iscsi_tcp` (and add it to /etc/modules-load.d/) on this node',
  20: 'iscsid is not running: run `systemctl enable --now iscsid` on this node',
};

/** Why iscsiadm failed, and the Hornbill code for it. */
export function parseIscsiadmFailure(
  exitCode: number,
  stderr: string,
  operation: 'login' | 'other',
): IscsiadmFailure {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('iscsiadm:'))
    .map((line) => line.slice('iscsiadm:'.length).trim());
  const initiator = /initiator reported error \((\d+) - [^)]*\)/.exec(stderr);
  const name = ISCSI_ERRORS[exitCode] ?? `exit status ${exitCode}`;
  const loginFailure = [4, 5, 8, 11, 19, 24].includes(exitCode);
  const fix =
    HOST_SETUP_FAILURES[exitCode] ??
    (/can not connect to iSCSI daemon/.test(stderr) && exitCode !== 21 ? HOST_SETUP_FAILURES[20] : undefined);
  return {
    exitCode,
    name,
    reason: lines.length > 0 ? lines.join('; ') : stderr.trim() || name,
    initiatorError: initiator === null ? undefined : Number(initiator[1]),
    code:
      fix !== undefined
        ? 'CSI_HOST_TOOL_MISSING'
        : operation === 'login' && loginFailure
          ? 'CSI_ISCSI_LOGIN_FAILED'
          : 'CSI_HOST_COMMAND_FAILED',
    fix,
  };
}

/** `10.0.0.11:3260,1` or `[fe80::1]:3260,1` → `10.0.0.11:3260` (the target portal group tag dropped). */
function portalOf(text: string): string {
  return text.replace(/,\d+$/, '');
}

/**
 * Sessions from `iscsiadm -m session -P 3` (targets, portals, states and attached disks), or
 * from the one-line form `tcp: [3] 10.0.0.11:3260,1 iqn… (non-flash)`.
 */
export function parseIscsiSessions(output: string): IscsiSession[] {
  const sessions: IscsiSession[] = [];
  let iqn = '';
  let portal = '';
  let current: IscsiSession | undefined;
  let lun = -1;
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    const short = /^\w+: \[(\d+)\] (\S+) (\S+)/.exec(line);
    if (short !== null && !line.startsWith('Target:')) {
      sessions.push({
        sid: Number(short[1]),
        portal: portalOf(short[2]),
        iqn: short[3],
        sessionState: 'LOGGED_IN',
        connectionState: 'LOGGED IN',
        disks: [],
      });
      continue;
    }
    let match: RegExpExecArray | null;
    if ((match = /^Target: (\S+)/.exec(line)) !== null) {
      iqn = match[1];
      current = undefined;
    } else if ((match = /^Current Portal: (\S+)/.exec(line)) !== null) portal = portalOf(match[1]);
    else if ((match = /^SID: (\d+)/.exec(line)) !== null) {
      current = {
        sid: Number(match[1]),
        iqn,
        portal,
        sessionState: 'UNKNOWN',
        connectionState: 'UNKNOWN',
        disks: [],
      };
      sessions.push(current);
      lun = -1;
    } else if (current !== undefined) {
      if ((match = /^iSCSI Connection State: (.+)$/.exec(line)) !== null) current.connectionState = match[1];
      else if ((match = /^iSCSI Session State: (\S+)/.exec(line)) !== null) current.sessionState = match[1];
      else if ((match = /Lun: (\d+)$/.exec(line)) !== null) lun = Number(match[1]);
      else if ((match = /^Attached scsi disk (\S+)\s+State: (\S+)/.exec(line)) !== null && lun >= 0)
        current.disks.push({ lun, device: match[1], state: match[2] });
    }
  }
  return sessions;
}

/** What a failed mount(8) or umount(8) means. */
export function classifyMountFailure(stderr: string): { code: ErrorCode; notMounted: boolean } {
  if (/not mounted|no mount point specified/.test(stderr))
    return { code: 'CSI_HOST_COMMAND_FAILED', notMounted: true };
  if (/already mounted|mount point busy|target is busy|device is busy/.test(stderr))
    return { code: 'CSI_DEVICE_BUSY', notMounted: false };
  return { code: 'CSI_HOST_COMMAND_FAILED', notMounted: false };
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * /proc/self/mountinfo (proc(5)): `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
 * Lines that do not parse are skipped.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (fields.length < 10 || separator < 0 || separator + 2 >= fields.length) continue;
    entries.push({
      majorMinor: fields[2],
      root: unescapeOctal(fields[3]),
      mountPoint: unescapeOctal(fields[4]),
      options: fields[5].split(','),
      fsType: fields[separator + 1],
      source: unescapeOctal(fields[separator + 2]),
    });
  }
  return entries;
}
