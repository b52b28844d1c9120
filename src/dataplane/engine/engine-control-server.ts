import net from 'node:net';
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { encodeHeader, FRAME_HEADER_BYTES, type FrameHeader, Op, type OpValue } from '../protocol/frame.ts';
import { FrameReader } from '../protocol/frame-reader.ts';
import { decodeJson, encodeError, encodeJson } from '../protocol/payloads.ts';
import type { Engine } from './engine.ts';

/**
 * The control port of a standalone engine (`hornbill engine --control HOST:PORT`): CONTROL
 * frames of the wire protocol carrying JSON, so that tests and operators drive an engine
 * without the control plane (the instance manager's gRPC API does this in a cluster).
 * `ReplicaClient.control()` speaks it.
 */
export class EngineControlServer {
  private readonly engine: Engine;
  private readonly log: Logger;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(engine: Engine, log: Logger) {
    this.engine = engine;
    this.log = log;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const address = this.server.address() as net.AddressInfo;
    return { host: address.address, port: address.port };
  }

  private accept(socket: net.Socket): void {
    if (this.sockets.size >= 16) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader(
      (header, payload) => this.handle(socket, header, payload),
      (reason) => {
        this.log('warn', 'closing an engine control connection after a malformed frame', { reason });
        socket.destroy();
      },
    );
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
  }

  private handle(socket: net.Socket, header: FrameHeader, payload: Buffer): void {
    // The reader reuses its header object for the next frame: answers sent after an await
    // must use the sequence copied now, or concurrent requests get each other's numbers.
    const sequence = header.sequence;
    const send = (op: OpValue, body: Buffer) => {
      if (socket.destroyed) return;
      const frame = Buffer.alloc(FRAME_HEADER_BYTES);
      encodeHeader(frame, 0, {
        op,
        sequence,
        offsetBytes: 0,
        lengthBytes: 0,
        payloadLength: body.length,
        flags: 0,
      });
      socket.write(frame);
      socket.write(body);
    };
    let request: { method?: unknown; params?: unknown };
    try {
      if (header.op !== Op.CONTROL && header.op !== Op.PING) {
        throw new HornbillError('INVALID_ARGUMENT', 'the engine control port takes CONTROL requests only');
      }
      request =
        header.op === Op.PING
          ? { method: 'status' }
          : (decodeJson(payload, 'control request') as typeof request);
      if (typeof request !== 'object' || request === null)
        throw new HornbillError('INVALID_ARGUMENT', 'a control request is {method, params}');
    } catch (error) {
      send(Op.ERROR, encodeError(error));
      return;
    }
    this.call(request.method, (request.params ?? {}) as Record<string, unknown>).then(
      (result) => send(Op.OK, encodeJson(result ?? null)),
      (error) => {
        if (!isHornbillError(error))
          this.log('error', 'engine control failed unexpectedly', { error: String(error) });
        send(Op.ERROR, encodeError(error));
      },
    );
  }

  private async call(method: unknown, params: Record<string, unknown>): Promise<unknown> {
    const engine = this.engine;
    const text = (name: string) => {
      if (typeof params[name] !== 'string')
        throw new HornbillError('INVALID_ARGUMENT', `parameter ${name} must be a string`);
      return params[name] as string;
    };
    const number = (name: string) => {
      if (typeof params[name] !== 'number')
        throw new HornbillError('INVALID_ARGUMENT', `parameter ${name} must be a number`);
      return params[name] as number;
    };
    switch (method) {
      case 'status':
        return {
          name: engine.name,
          sizeBytes: engine.sizeBytes,
          robustness: engine.robustness,
          replicas: engine.status(),
          rebuild: engine.rebuildStatus() ?? null,
          clone: engine.cloneStatus() ?? null,
        };
      case 'snapshot':
        return engine.snapshot(text('name'), {
          userCreated: params.userCreated !== false,
          labels: labelMap(params.labels),
        });
      case 'deleteSnapshot':
        return engine.controlAll('deleteSnapshot', { name: text('name') });
      case 'revert':
        return engine.revert(text('name'));
      case 'purge':
        return engine.purge();
      case 'listChain':
        return engine.controlAll('listChain');
      case 'hashSnapshot':
        return engine.controlAll('hashSnapshot', { name: text('name') });
      case 'mappingStatus':
        return engine.mappingStatus(number('offsetBytes'), number('lengthBytes'));
      case 'flush':
        await engine.flush();
        return null;
      case 'expand':
        await engine.expand(number('sizeBytes'));
        return null;
      case 'addReplica':
        return engine.addReplica(
          { host: text('host'), port: number('port') },
          {
            local: params.local === true,
            ...(typeof params.bandwidthBytesPerSecond === 'number'
              ? { bandwidthBytesPerSecond: params.bandwidthBytesPerSecond }
              : {}),
          },
        );
      case 'clone': {
        if (!Array.isArray(params.sources) || params.sources.length === 0)
          throw new HornbillError(
            'INVALID_ARGUMENT',
            'parameter sources must be a list of replica addresses',
          );
        const sources = params.sources.map((source: unknown) => {
          const entry = source as { host?: unknown; port?: unknown };
          if (typeof entry?.host !== 'string' || typeof entry.port !== 'number')
            throw new HornbillError('INVALID_ARGUMENT', 'each source must be { host, port }');
          return { host: entry.host, port: entry.port };
        });
        return engine.clone({
          sources,
          snapshot: text('snapshot'),
          origin: text('origin'),
          ...(typeof params.bandwidthBytesPerSecond === 'number'
            ? { bandwidthBytesPerSecond: params.bandwidthBytesPerSecond }
            : {}),
        });
      }
      case 'removeReplica':
        engine.removeReplica({ host: text('host'), port: number('port') });
        return null;
      default:
        throw new HornbillError(
          'INVALID_ARGUMENT',
          `unknown engine control method ${JSON.stringify(method)}`,
        );
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Snapshot labels from a control request: an object of strings (the store checks sizes). */
function labelMap(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new HornbillError('INVALID_ARGUMENT', 'parameter labels must be an object of strings');
  for (const [key, label] of Object.entries(value)) {
    if (typeof label !== 'string')
      throw new HornbillError('INVALID_ARGUMENT', `label ${JSON.stringify(key)} must be a string`, { key });
  }
  return value as Record<string, string>;
}
