/**
 * `hornbill volume inspect NAME`: one volume with everything an operator looks at when it
 * is degraded or faulted — its engine (state, endpoint, rebuilds), replicas (node, disk,
 * mode, rebuild progress), snapshot tree, conditions, attachment tickets and recent
 * events — as a describe-style text, or the whole object with -o json|yaml.
 */
import { HornbillError } from '../../errors.ts';
import type { GraphQLClient } from './client.ts';
import type { CommandIO } from './command.ts';
import { EVENT_FIELDS, type EventView, eventRows } from './event.ts';
import { ageOf, bytesCell, cell, document, labelsCell, lower, type OutputFormat, table } from './format.ts';
import { SNAPSHOT_FIELDS, type SnapshotView, snapshotTree } from './snapshot.ts';
import { VOLUME_FIELDS, type VolumeView } from './volume-view.ts';
import { watchVolume } from './volume-watch.ts';

const INSPECT_QUERY = `query($name: String!) { volume(name: $name) {
  ${VOLUME_FIELDS} nodeSelector diskSelector staleReplicaTimeout lastDegradedAt expansionRequired dataSource
  cloneStatus { state sourceVolume snapshot progress transferredBytes attemptCount error }
  labels { key value }
  engine { name nodeID currentState desireState endpoint frontend instanceManagerName ip port salvageRequested
    rebuilds { address fromReplicaAddress progress isRebuilding state error } replicaModes { replica mode address } }
  replicas { name nodeID diskPath dataDirectoryName mode currentState rebuilding rebuildProgress address failedAt healthyAt }
  snapshots { ${SNAPSHOT_FIELDS} }
  conditions { type status reason message lastTransitionTime }
  attachmentTickets { id type nodeID satisfied }
  kubernetesStatus { namespace pvName pvcName pvStatus workloads }
  events(first: 10) { ${EVENT_FIELDS} }
} }`;

interface ReplicaView {
  name: string;
  nodeID: string;
  diskPath: string;
  mode: string | null;
  currentState: string | null;
  rebuilding: boolean;
  rebuildProgress: number | null;
  address: string | null;
  failedAt: string | null;
}

interface InspectedVolume extends VolumeView {
  engine: {
    name: string;
    nodeID: string;
    currentState: string | null;
    endpoint: string | null;
    instanceManagerName: string | null;
    rebuilds: {
      address: string;
      progress: number;
      isRebuilding: boolean;
      state: string;
      error: string | null;
    }[];
  } | null;
  replicas: ReplicaView[];
  snapshots: SnapshotView[];
  conditions: { type: string; status: string; reason: string; message: string; lastTransitionTime: string }[];
  attachmentTickets: { id: string; type: string; nodeID: string; satisfied: boolean }[];
  events: EventView[];
  labels: { key: string; value: string }[];
  actualSize: string | null;
  nodeSelector: string[];
  dataSource?: string | null;
  cloneStatus?: {
    state: string;
    sourceVolume: string;
    snapshot: string;
    progress: number;
    transferredBytes: string | null;
    attemptCount: number;
    error: string | null;
  } | null;
}

/** The describe-style text of an inspected volume. */
export function describeVolume(volume: InspectedVolume, nowMs: number): string {
  const field = (label: string, value: string) => `${`${label}:`.padEnd(18)}${value}\n`;
  const indent = (text: string) =>
    text
      .trimEnd()
      .split('\n')
      .map((line) => `  ${line}`)
      .join('\n')
      .concat('\n');
  let text = '';
  text += field('Name', volume.name);
  text += field('State', lower(volume.state));
  text += field('Robustness', lower(volume.robustness));
  text += field('Size', `${volume.size} (actual ${bytesCell(volume.actualSize)})`);
  text += field('Node', cell(volume.currentNodeID));
  text += field('Frontend', volume.disableFrontend === true ? 'disabled' : lower(volume.frontend));
  text += field('Endpoint', cell(volume.endpoint));
  text += field('Access mode', lower(volume.accessMode));
  text += field('Data locality', lower(volume.dataLocality));
  text += field('Replicas wanted', String(volume.numberOfReplicas));
  text += field('Node selector', volume.nodeSelector.length === 0 ? '<none>' : volume.nodeSelector.join(','));
  text += field('Labels', labelsCell(volume.labels));
  if (volume.dataSource) {
    const clone = volume.cloneStatus;
    text += field(
      'Data source',
      clone === null || clone === undefined
        ? volume.dataSource
        : `${volume.dataSource}: ${clone.state} ${clone.progress}% (snapshot ${clone.snapshot}, ${bytesCell(clone.transferredBytes)} copied${clone.attemptCount > 0 ? `, ${clone.attemptCount} failed attempt(s)` : ''}${clone.error ? `; ${clone.error}` : ''})`,
    );
  }
  text += field('Age', ageOf(volume.creationTimestamp, nowMs));
  const engine = volume.engine;
  text += field(
    'Engine',
    engine === null
      ? '<none>'
      : `${engine.name} on ${cell(engine.nodeID)}, ${lower(engine.currentState)}${engine.instanceManagerName ? ` (${engine.instanceManagerName})` : ''}`,
  );
  for (const rebuild of engine?.rebuilds ?? []) {
    text += field(
      '  Rebuild',
      `${rebuild.address} ${rebuild.state} ${rebuild.progress}%${rebuild.error ? ` ${rebuild.error}` : ''}`,
    );
  }
  text += 'Replicas:\n';
  text += indent(
    table(
      ['NAME', 'NODE', 'MODE', 'STATE', 'REBUILD', 'ADDRESS', 'DISK'],
      volume.replicas.map((replica) => [
        replica.name,
        cell(replica.nodeID),
        cell(replica.mode),
        lower(replica.currentState),
        replica.rebuildProgress === null ? '-' : `${replica.rebuildProgress}%`,
        cell(replica.address),
        cell(replica.diskPath),
      ]),
      'none',
    ),
  );
  text += 'Snapshots:\n';
  text += indent(
    table(
      ['NAME', 'SIZE', 'USER-CREATED', 'REMOVED', 'AGE'],
      snapshotTree(volume.snapshots).map(({ prefix, name, snapshot }) => [
        `${prefix}${name}`,
        snapshot === undefined ? '' : bytesCell(snapshot.size),
        snapshot === undefined ? '' : String(snapshot.userCreated),
        snapshot === undefined ? '' : String(snapshot.removed),
        snapshot === undefined ? '' : ageOf(snapshot.creationTime, nowMs),
      ]),
      'none',
    ),
  );
  text += 'Attachment tickets:\n';
  text += indent(
    table(
      ['ID', 'TYPE', 'NODE', 'SATISFIED'],
      volume.attachmentTickets.map((ticket) => [
        ticket.id,
        lower(ticket.type),
        ticket.nodeID,
        String(ticket.satisfied),
      ]),
      'none',
    ),
  );
  text += 'Conditions:\n';
  text += indent(
    table(
      ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
      volume.conditions.map((condition) => [
        condition.type,
        condition.status,
        cell(condition.reason),
        ageOf(condition.lastTransitionTime, nowMs),
        condition.message,
      ]),
      'none',
    ),
  );
  text += 'Events:\n';
  text += indent(
    table(
      ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'],
      eventRows(volume.events, false, nowMs),
      'none',
    ),
  );
  return text;
}

export async function inspectVolume(
  client: GraphQLClient,
  name: string,
  options: { output: OutputFormat; watch: boolean; io: CommandIO },
): Promise<number> {
  const { volume } = await client.query<{ volume: InspectedVolume | null }>(INSPECT_QUERY, { name });
  if (volume === null) throw new HornbillError('RESOURCE_NOT_FOUND', `volume ${name} not found`);
  if (options.output === 'json' || options.output === 'yaml') {
    if (!options.watch) options.io.print(document(volume, options.output));
  } else options.io.print(describeVolume(volume, Date.now()));
  if (!options.watch) return 0;
  return watchVolume(client, name, options.output, options.io);
}
