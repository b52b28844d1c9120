/**
 * Is the NFS server answering? Two probes:
 *
 * - `probeNfsNull`: the NULL procedure of the NFS program (100003, version 4) over TCP, an
 *   ONC RPC call (RFC 5531) in one record-marked fragment, 40 bytes. Ganesha answers it only
 *   once its dispatcher runs, which is after its exports are built, so a SUCCESS reply means
 *   the export is served. It needs no tool and works whatever minor versions are enabled.
 * - `probeExportListing`: `nfs-ls nfs://ADDRESS/VOLUME?version=4&nfsport=PORT` from
 *   libnfs-utils, which walks the pseudo filesystem to the export. libnfs 4.0 speaks
 *   NFSv4.0 only, so this probe is used only when the server serves minor version 0.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';

const NFS_PROGRAM = 100003;
const NFS_VERSION = 4;
const RPC_CALL = 0;
const RPC_REPLY = 1;
const MSG_ACCEPTED = 0;
const ACCEPT_SUCCESS = 0;
const LAST_FRAGMENT = 0x8000_0000;
/** A NULL reply is 28 bytes (with an empty verifier); anything past 1 KiB is not one. */
const REPLY_BYTES_MAX = 1024;

/** The NULL call, record-marked (RFC 5531 §11). */
export function nullCallRecord(xid: number): Buffer {
  const call = Buffer.alloc(4 + 40);
  call.writeUInt32BE((LAST_FRAGMENT | 40) >>> 0, 0);
  const words = [xid, RPC_CALL, 2, NFS_PROGRAM, NFS_VERSION, 0, 0, 0, 0, 0];
  words.forEach((word, index) => {
    call.writeUInt32BE(word >>> 0, 4 + index * 4);
  });
  return call;
}

/** 'success', 'incomplete' (read more), or why the reply is not a successful NULL reply. */
export function checkNullReply(record: Buffer, xid: number): 'success' | 'incomplete' | string {
  if (record.length < 4) return 'incomplete';
  const length = record.readUInt32BE(0) & 0x7fff_ffff;
  if (length < 24 || length > REPLY_BYTES_MAX) return `reply fragment of ${length} bytes`;
  if (record.length < 4 + length) return 'incomplete';
  const body = record.subarray(4, 4 + length);
  if (body.readUInt32BE(0) !== xid >>> 0) return 'reply to another call';
  if (body.readUInt32BE(4) !== RPC_REPLY) return 'not a reply';
  if (body.readUInt32BE(8) !== MSG_ACCEPTED) return 'call denied';
  const verifierLength = body.readUInt32BE(16);
  const acceptOffset = 20 + Math.ceil(verifierLength / 4) * 4;
  if (body.length < acceptOffset + 4) return 'reply too short';
  const acceptStatus = body.readUInt32BE(acceptOffset);
  return acceptStatus === ACCEPT_SUCCESS ? 'success' : `accept status ${acceptStatus}`;
}

/** Resolves to undefined when the server answered NULL with SUCCESS, else to why not. */
export function probeNfsNull(address: string, port: number, timeoutMs = 1_000): Promise<string | undefined> {
  const xid = (Math.random() * 0xffff_ffff) >>> 0;
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const socket = net.connect({ host: address, port });
    const finish = (outcome: string | undefined) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(`no answer in ${timeoutMs} ms`), timeoutMs);
    socket.on('connect', () => socket.write(nullCallRecord(xid)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const verdict = checkNullReply(received, xid);
      if (verdict === 'success') finish(undefined);
      else if (verdict !== 'incomplete') finish(verdict);
      else if (received.length > REPLY_BYTES_MAX) finish('reply too long');
    });
    socket.on('error', (error) => finish(error.message));
    socket.on('close', () => finish('connection closed before the reply'));
  });
}

/** `nfs-ls` of the export (NFSv4.0 only); undefined when it listed, else its error output. */
export function probeExportListing(
  address: string,
  port: number,
  volume: string,
  timeoutMs = 5_000,
): Promise<string | undefined> {
  const url = `nfs://${address}/${volume}?version=4&nfsport=${port}`;
  return new Promise((resolve) => {
    execFile('nfs-ls', [url], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, _stdout, stderr) => {
      resolve(error === null ? undefined : `${error.message} ${stderr}`.trim());
    });
  });
}
