/**
 * What the volume commands show of a volume: the fields they query, the `volume ls`
 * columns (those of `kubectl get volumes.longhorn.io`) and the paged listing.
 */
import type { GraphQLClient } from './client.ts';
import { ageOf, cell, lower } from './format.ts';

export interface VolumeView {
  name: string;
  state: string | null;
  robustness: string | null;
  size: string;
  sizeBytes: string;
  currentNodeID: string | null;
  creationTimestamp: string;
  numberOfReplicas: number;
  accessMode: string;
  dataLocality: string;
  frontend: string;
  endpoint: string | null;
  [field: string]: unknown;
}

export const VOLUME_FIELDS =
  'name state robustness size sizeBytes actualSize currentNodeID nodeID creationTimestamp numberOfReplicas accessMode dataLocality frontend disableFrontend endpoint shareEndpoint';

export const VOLUME_HEADER = ['NAME', 'STATE', 'ROBUSTNESS', 'SIZE', 'NODE', 'AGE'];
export const VOLUME_WIDE_HEADER = [
  ...VOLUME_HEADER,
  'REPLICAS',
  'ACCESS-MODE',
  'DATA-LOCALITY',
  'FRONTEND',
  'ENDPOINT',
];

/** One `volume ls` row, as kubectl prints the Volume's printer columns. */
export function volumeRow(volume: VolumeView, wide: boolean, nowMs: number): string[] {
  const row = [
    volume.name,
    lower(volume.state),
    lower(volume.robustness),
    volume.size,
    cell(volume.currentNodeID),
    ageOf(volume.creationTimestamp, nowMs),
  ];
  if (!wide) return row;
  return [
    ...row,
    String(volume.numberOfReplicas),
    lower(volume.accessMode),
    lower(volume.dataLocality),
    volume.disableFrontend === true ? 'disabled' : lower(volume.frontend),
    cell(volume.endpoint),
  ];
}

/** Every volume matching the filters, page by page (500 a page). */
export async function listVolumes(
  client: GraphQLClient,
  filters: { state?: string; node?: string; robustness?: string },
): Promise<VolumeView[]> {
  const volumes: VolumeView[] = [];
  let after: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const data: {
      volumes: { nodes: VolumeView[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } };
    } = await client.query(
      `query($after: String, $state: VolumeState, $node: String, $robustness: VolumeRobustness) {
        volumes(first: 500, after: $after, state: $state, node: $node, robustness: $robustness) {
          nodes { ${VOLUME_FIELDS} } pageInfo { endCursor hasNextPage } } }`,
      { after, ...filters },
    );
    volumes.push(...data.volumes.nodes);
    if (!data.volumes.pageInfo.hasNextPage) break;
    after = data.volumes.pageInfo.endCursor;
  }
  return volumes;
}
