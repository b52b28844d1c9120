/**
 * What the e2e tests that drive a cluster through GraphQL share: an admin client (a token
 * made in the manager's token file, read by the manager within a second), mutations whose
 * payload errors fail the test, and waiting for a snapshot to be ready.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphQLClient } from '../../../src/cli/operator/client.ts';
import { TokenStore } from '../../../src/graphql/index.ts';
import { TOKENS_FILE_NAME } from '../../../src/manager/manager.ts';
import { type Cluster, waitFor } from './cluster.ts';

export interface AdminApi {
  api: GraphQLClient;
  /** The admin token (for the CLI: HORNBILL_TOKEN). */
  token: string;
  /** Runs a mutation; its payload's `errors` must be empty. Returns the payload. */
  mutate<T = Record<string, unknown>>(
    document: string,
    variables: Record<string, unknown>,
    field: string,
  ): Promise<T>;
  /** Waits until the volume lists snapshot `name` as readyToUse. */
  snapshotReady(volume: string, name: string, timeoutMs?: number): Promise<void>;
}

export async function adminApi(cluster: Cluster, tokenName: string): Promise<AdminApi> {
  const tokens = await TokenStore.open(path.join(cluster.dataDirectory, 'state', TOKENS_FILE_NAME));
  const token = await tokens.create(tokenName, 'admin');
  const api = new GraphQLClient({ server: cluster.manager.url, token });
  await sleep(1200); // the manager reads new tokens within a second
  const mutate = async <T>(
    document: string,
    variables: Record<string, unknown>,
    field: string,
  ): Promise<T> => {
    const data = await api.query<Record<string, { errors: { code: string; message: string }[] } & T>>(
      document,
      variables,
    );
    assert.deepEqual(data[field].errors, [], `${field}: ${JSON.stringify(data[field].errors)}`);
    return data[field];
  };
  const snapshotReady = async (volume: string, name: string, timeoutMs = 30_000) => {
    await waitFor(async () => {
      const { snapshots } = await api.query<{ snapshots: { name: string; readyToUse: boolean }[] }>(
        `query ($volume: String!) { snapshots(volume: $volume) { name readyToUse } }`,
        { volume },
      );
      assert.ok(
        snapshots.some((snapshot) => snapshot.name === name && snapshot.readyToUse),
        `snapshot ${name} of ${volume} ready: ${JSON.stringify(snapshots)}`,
      );
      return snapshots;
    }, timeoutMs);
  };
  return { api, token, mutate, snapshotReady };
}
