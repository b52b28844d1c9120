import type net from 'node:net';
import type { HornbillError } from '../errors.ts';

/**
 * Settles when `socket`, just made by `net.connect`, is connected: resolves with it, or
 * rejects with `failure(reason, timedOut)` when it fails or `timeoutMs` passes first (the
 * socket is destroyed then). Its own listeners are gone either way. Used by the replica
 * client, the iSCSI initiator and the bench NBD client, each with its own error code.
 */
export function whenConnected(
  socket: net.Socket,
  timeoutMs: number,
  failure: (reason: string, timedOut: boolean) => HornbillError,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const settle = (error?: HornbillError) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (error === undefined) resolve(socket);
      else reject(error);
    };
    const onConnect = () => settle();
    const onError = (error: Error) => settle(failure(error.message, false));
    const timer = setTimeout(() => {
      settle(failure('timed out', true));
      socket.destroy();
    }, timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}
