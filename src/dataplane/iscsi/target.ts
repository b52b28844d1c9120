import net from 'node:net';
import { HornbillError } from '../../errors.ts';
import { type Logger, type LogLevel, stderrLogger } from '../../logging.ts';
import type { BlockDevice } from '../block-device.ts';
import { type ChapOptions, MAX_CHAP_SECRET_BYTES, MIN_CHAP_SECRET_BYTES } from './chap.ts';
import { type ConnectionHost, type ConnectionSettings, IscsiConnection } from './connection.ts';
import { LoginStatus, type SessionParameters } from './login.ts';
import { AdditionalSense } from './scsi/constants.ts';
import { DEFAULT_MAX_TRANSFER_BYTES, LogicalUnit } from './scsi/logical-unit.ts';
import { IscsiSession, type VolumeEntry } from './session.ts';

export const IQN_PREFIX = 'iqn.2026-11.io.hornbill';

export interface IscsiTargetOptions {
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 3260. */
  port?: number;
  /** Address given to initiators in SendTargets (default: the listening address). */
  advertisedHost?: string;
  portalGroupTag?: number;
  /** Require CHAP (and offer mutual CHAP when `target` credentials are given). Default: no auth. */
  chap?: ChapOptions | null;
  /** Largest data segment accepted (bytes). Default 256 KiB. */
  maxRecvDataSegmentLength?: number;
  /** Largest burst offered (bytes). Default 1 MiB. */
  maxBurstLength?: number;
  /** Largest unsolicited burst offered (bytes). Default 256 KiB. */
  firstBurstLength?: number;
  /** Offer ImmediateData=Yes. Default true. */
  immediateData?: boolean;
  /** Offer InitialR2T=Yes (no unsolicited Data-Out). Default false. */
  initialR2T?: boolean;
  /** Commands in flight per session (the CmdSN window). Default 64. */
  commandWindow?: number;
  /** Largest READ/WRITE (bytes). Default 1 MiB. */
  maxTransferBytes?: number;
  /** Idle time before a NOP-In ping (ms); 0 disables pings. Default 5000. */
  nopIntervalMs?: number;
  /** Time to answer a ping before the connection is dropped (ms). Default 15000. */
  nopTimeoutMs?: number;
  /** Time to finish login (ms). Default 15000. */
  loginTimeoutMs?: number;
  /** Open connections at most; more are refused. Default 256. */
  maxConnections?: number;
  /** Stop reading a connection while this many response bytes wait on its socket. Default 32 MiB. */
  maxQueuedWriteBytes?: number;
  /** Receives every log record; default: warnings as JSON lines on stderr. */
  logger?: Logger | null;
}

const VOLUME_NAME_PATTERN = /^[a-z0-9][a-z0-9.-]{0,199}$/;

/**
 * The iSCSI target of an instance manager: one portal (host, port) serving one iSCSI target
 * per attached volume, `iqn.2026-11.io.hornbill:<volume>`, each with LUN 0, plus discovery
 * sessions (SendTargets).
 *
 * ```ts
 * const target = new IscsiTarget({ host: '127.0.0.1', port: 3260 });
 * target.addVolume('pvc-1', device);
 * const { port } = await target.listen();
 * // ... iscsiadm -m discovery -t st -p 127.0.0.1:3260
 * await target.removeVolume('pvc-1');   // ends its sessions, waits for their I/O
 * await target.close();
 * ```
 */
export class IscsiTarget implements ConnectionHost {
  readonly settings: ConnectionSettings;
  clockMs = Date.now();
  private readonly options: Required<
    Pick<IscsiTargetOptions, 'host' | 'port' | 'maxConnections' | 'maxTransferBytes'>
  > &
    IscsiTargetOptions;
  private readonly logger: Logger;
  private readonly volumesByTargetName = new Map<string, VolumeEntry>();
  private readonly sessionsByTsih = new Map<number, IscsiSession>();
  private readonly connections = new Set<IscsiConnection>();
  private readonly server: net.Server;
  private nextConnectionId = 1;
  private nextTsih = 1;
  private boundHost = '';
  private boundPort = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Connections accepted and refused since start (for tests and metrics). */
  readonly counters = { accepted: 0, refused: 0, closed: 0, loginsSucceeded: 0 };

  constructor(options: IscsiTargetOptions = {}) {
    const chap = options.chap ?? null;
    if (chap !== null) validateChap(chap);
    const limits = {
      maxRecvDataSegmentLength: checkRange(
        'maxRecvDataSegmentLength',
        options.maxRecvDataSegmentLength ?? 262144,
        512,
        0xffffff,
      ),
      maxBurstLength: checkRange('maxBurstLength', options.maxBurstLength ?? 1048576, 512, 0xffffff),
      firstBurstLength: checkRange('firstBurstLength', options.firstBurstLength ?? 262144, 512, 0xffffff),
      immediateData: options.immediateData ?? true,
      initialR2T: options.initialR2T ?? false,
      maxOutstandingR2T: 1,
      defaultTime2Wait: 2,
      defaultTime2Retain: 0,
    };
    this.settings = {
      portalGroupTag: checkRange('portalGroupTag', options.portalGroupTag ?? 1, 1, 65535),
      chap,
      limits,
      commandWindow: checkRange('commandWindow', options.commandWindow ?? 64, 1, 1024),
      nopIntervalMs: checkRange('nopIntervalMs', options.nopIntervalMs ?? 5000, 0, 3_600_000),
      nopTimeoutMs: checkRange('nopTimeoutMs', options.nopTimeoutMs ?? 15000, 1, 3_600_000),
      loginTimeoutMs: checkRange('loginTimeoutMs', options.loginTimeoutMs ?? 15000, 1, 3_600_000),
      maxQueuedWriteBytes: checkRange(
        'maxQueuedWriteBytes',
        options.maxQueuedWriteBytes ?? 32 << 20,
        1 << 20,
        2 ** 31,
      ),
    };
    this.options = {
      ...options,
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 3260,
      maxConnections: checkRange('maxConnections', options.maxConnections ?? 256, 1, 65535),
      maxTransferBytes: options.maxTransferBytes ?? DEFAULT_MAX_TRANSFER_BYTES,
    };
    this.logger = options.logger ?? stderrLogger('iscsi', 'warn');
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', (error) => this.log('warn', 'portal error', { error: error.message }));
  }

  /** Serves `device` as target `iqn.2026-11.io.hornbill:<name>`, LUN 0. */
  addVolume(name: string, device: BlockDevice, options: { readOnly?: boolean } = {}): LogicalUnit {
    if (!VOLUME_NAME_PATTERN.test(name)) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        'a volume name is 1-200 of a-z 0-9 . - starting with a letter or digit',
        {
          name,
        },
      );
    }
    const targetName = `${IQN_PREFIX}:${name}`;
    if (this.volumesByTargetName.has(targetName)) {
      throw new HornbillError('ISCSI_VOLUME_EXISTS', `volume ${name} is already served`, { name });
    }
    const unit = new LogicalUnit(device, {
      targetName,
      portalGroupTag: this.settings.portalGroupTag,
      maxTransferBytes: this.options.maxTransferBytes,
      readOnly: options.readOnly ?? false,
    });
    const volume: VolumeEntry = { name, targetName, device, unit, sessions: new Set() };
    unit.setTaskAborter((nexusKeys) => {
      for (const session of volume.sessions) {
        if (session.nexus !== null && nexusKeys.includes(session.nexus.key)) {
          session.connection?.abortAllTasks('registration preempted (PREEMPT AND ABORT)');
        }
      }
    });
    this.volumesByTargetName.set(targetName, volume);
    this.log('info', 'volume added', { volume: name, target: targetName });
    return unit;
  }

  /** Stops serving a volume: its sessions end; resolves once none of their I/O still runs. */
  async removeVolume(name: string): Promise<void> {
    const targetName = `${IQN_PREFIX}:${name}`;
    const volume = this.volumesByTargetName.get(targetName);
    if (volume === undefined)
      throw new HornbillError('ISCSI_VOLUME_NOT_FOUND', `volume ${name} is not served`, { name });
    this.volumesByTargetName.delete(targetName);
    const drains: Promise<void>[] = [];
    for (const session of [...volume.sessions]) {
      const connection = session.connection;
      if (connection instanceof IscsiConnection) {
        connection.close(`volume ${name} removed`);
        drains.push(connection.whenDrained());
      }
      this.sessionEnded(session);
    }
    await Promise.all(drains);
    this.log('info', 'volume removed', { volume: name });
  }

  listVolumes(): string[] {
    return [...this.volumesByTargetName.values()].map((volume) => volume.name);
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(
          new HornbillError(
            'ISCSI_LISTEN_FAILED',
            `cannot listen on ${this.options.host}:${this.options.port}: ${error.message}`,
            {
              host: this.options.host,
              port: this.options.port,
            },
          ),
        );
      };
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        const address = this.server.address() as net.AddressInfo;
        this.boundHost = address.address;
        this.boundPort = address.port;
        this.timer = setInterval(() => this.tick(), 1000);
        this.timer.unref();
        this.log('info', 'portal listening', { host: this.boundHost, port: this.boundPort });
        resolve({ host: this.boundHost, port: this.boundPort });
      });
    });
  }

  /** Stops listening, closes every connection, and waits for their I/O to finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const drains: Promise<void>[] = [];
    for (const connection of this.connections) {
      connection.destroy();
      drains.push(connection.whenDrained());
    }
    await Promise.all(drains);
    await serverClosed;
  }

  /** Open TCP connections (the target's own socket accounting). */
  get connectionCount(): number {
    return this.connections.size;
  }

  get sessionCount(): number {
    return this.sessionsByTsih.size;
  }

  // ---- ConnectionHost -------------------------------------------------------------------------

  log(level: LogLevel, message: string, fields: Record<string, unknown>): void {
    try {
      this.logger(level, message, fields);
    } catch {
      // A failing logger must not take the target down.
    }
  }

  findVolume(targetName: string): VolumeEntry | undefined {
    return this.volumesByTargetName.get(targetName);
  }

  volumes(): Iterable<VolumeEntry> {
    return this.volumesByTargetName.values();
  }

  portalAddress(): string {
    const host = this.options.advertisedHost ?? this.boundHost;
    const shown = host.includes(':') ? `[${host}]` : host;
    return `${shown}:${this.boundPort},${this.settings.portalGroupTag}`;
  }

  openSession(
    connection: IscsiConnection,
    parameters: SessionParameters,
    isid: string,
    tsih: number,
    cmdSN: number,
  ): IscsiSession | { status: number; reason: string } {
    let volume: VolumeEntry | null = null;
    if (parameters.sessionType === 'Normal') {
      volume = this.volumesByTargetName.get(parameters.targetName) ?? null;
      if (volume === null)
        return { status: LoginStatus.TARGET_REMOVED, reason: `${parameters.targetName} was removed` };
    }
    if (tsih !== 0) {
      const existing = this.sessionsByTsih.get(tsih);
      if (
        existing === undefined ||
        existing.isid !== isid ||
        existing.initiatorName !== parameters.initiatorName ||
        existing.volume !== volume
      ) {
        return { status: LoginStatus.SESSION_DOES_NOT_EXIST, reason: `no session with TSIH ${tsih}` };
      }
      // Connection reinstatement: the old connection's tasks end, the session goes on.
      const old = existing.connection;
      existing.connection = connection;
      if (old !== null && old !== connection) old.close('connection reinstated');
      existing.parameters = parameters;
      existing.expCmdSN = cmdSN >>> 0;
      existing.maxCmdSNAdvertised = (cmdSN - 1) >>> 0;
      return existing;
    }
    if (volume !== null) {
      // Session reinstatement: an older session of the same initiator port ends.
      for (const session of [...volume.sessions]) {
        if (session.initiatorName === parameters.initiatorName && session.isid === isid) {
          session.connection?.close('session reinstated');
          this.sessionEnded(session);
        }
      }
    }
    if (this.sessionsByTsih.size >= this.options.maxConnections) {
      return { status: LoginStatus.OUT_OF_RESOURCES, reason: 'too many sessions' };
    }
    while (this.sessionsByTsih.has(this.nextTsih)) this.nextTsih = (this.nextTsih % 0xffff) + 1;
    const session = new IscsiSession({
      tsih: this.nextTsih,
      isid,
      initiatorName: parameters.initiatorName,
      volume,
      parameters,
      cmdSN,
      portalGroupTag: this.settings.portalGroupTag,
    });
    this.nextTsih = (this.nextTsih % 0xffff) + 1;
    this.sessionsByTsih.set(session.tsih, session);
    if (volume !== null) {
      volume.sessions.add(session);
      volume.unit.attachNexus(session.nexus!);
    }
    this.counters.loginsSucceeded++;
    return session;
  }

  sessionEnded(session: IscsiSession): void {
    if (this.sessionsByTsih.get(session.tsih) !== session) return;
    this.sessionsByTsih.delete(session.tsih);
    const volume = session.volume;
    if (volume?.sessions.delete(session)) volume.unit.detachNexus(session.nexus!);
  }

  connectionClosed(connection: IscsiConnection): void {
    if (this.connections.delete(connection)) this.counters.closed++;
  }

  async resetLogicalUnit(volume: VolumeEntry): Promise<void> {
    await this.abortOnVolume(volume, 'logical unit reset');
    volume.unit.reset(AdditionalSense.BUS_DEVICE_RESET_FUNCTION_OCCURRED);
  }

  async clearTaskSet(volume: VolumeEntry): Promise<void> {
    await this.abortOnVolume(volume, 'clear task set');
  }

  async resetTarget(volume: VolumeEntry): Promise<void> {
    await this.abortOnVolume(volume, 'target warm reset');
    volume.unit.reset(AdditionalSense.POWER_ON_RESET_OR_BUS_DEVICE_RESET);
  }

  private async abortOnVolume(volume: VolumeEntry, reason: string): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const session of volume.sessions) {
      const connection = session.connection;
      if (connection !== null) waits.push(connection.abortAllTasks(reason));
    }
    await Promise.all(waits);
  }

  private accept(socket: net.Socket): void {
    if (this.closed || this.connections.size >= this.options.maxConnections) {
      this.counters.refused++;
      this.log('warn', 'connection refused', { remote: socket.remoteAddress, open: this.connections.size });
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    this.counters.accepted++;
    const connection = new IscsiConnection(this.nextConnectionId++, socket, this);
    this.connections.add(connection);
  }

  private tick(): void {
    this.clockMs = Date.now();
    for (const connection of this.connections) connection.tick(this.clockMs);
  }
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new HornbillError('INVALID_ARGUMENT', `${name} must be an integer in [${min}, ${max}]`, {
      name,
      value,
    });
  }
  return value;
}

function validateChap(chap: ChapOptions): void {
  for (const credentials of [chap.initiator, chap.target]) {
    if (credentials === undefined) continue;
    const bytes = Buffer.byteLength(credentials.secret, 'utf8');
    if (bytes < MIN_CHAP_SECRET_BYTES || bytes > MAX_CHAP_SECRET_BYTES || credentials.username.length === 0) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `CHAP needs a user name and a secret of ${MIN_CHAP_SECRET_BYTES}-${MAX_CHAP_SECRET_BYTES} bytes`,
        { username: credentials.username },
      );
    }
  }
}
