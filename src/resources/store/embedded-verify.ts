/**
 * A full check of the embedded store's file: every record's checksum, and every invariant
 * between the objects, the uid and owner indexes, the change log and the Events. LMDB
 * transactions are atomic, so a crash cannot break these; a problem here means damage or a
 * bug, and the store refuses to open rather than serve from it.
 */
import { isHornbillError } from '../../errors.ts';
import { FORMAT_MAGIC, FORMAT_VERSION, objectKey, type StateDatabase } from './embedded-database.ts';

export interface VerifyReport {
  objects: number;
  changes: number;
  events: number;
  /** Empty when the file is sound; at most MAX_PROBLEMS entries. */
  problems: string[];
}

const MAX_PROBLEMS = 32;

export function verifyState(database: StateDatabase): VerifyReport {
  const report: VerifyReport = { objects: 0, changes: 0, events: 0, problems: [] };
  const problem = (text: string) => {
    if (report.problems.length < MAX_PROBLEMS) report.problems.push(text);
  };
  try {
    const format = database.readFormat();
    if (format?.magic !== FORMAT_MAGIC || format.version !== FORMAT_VERSION) {
      problem(`format record ${JSON.stringify(format)} is not ${FORMAT_MAGIC} version ${FORMAT_VERSION}`);
      return report;
    }
    const state = database.readState();
    if (
      state === undefined ||
      !Number.isSafeInteger(state.revision) ||
      !Number.isSafeInteger(state.compactedRevision) ||
      state.compactedRevision < 0 ||
      state.compactedRevision > state.revision
    ) {
      problem(`state record ${JSON.stringify(state)} is not valid`);
      return report;
    }
    const uidOwners = new Map<string, string>();
    const expectedDependents = new Set<string>();
    for (const [key, object] of database.allObjects()) {
      report.objects++;
      const { kind, metadata } = object;
      if (key !== objectKey(kind, metadata?.namespace, metadata?.name))
        problem(`objects/${key} holds another object`);
      const version = Number(metadata.resourceVersion);
      if (!Number.isSafeInteger(version) || version < 1 || version > state.revision) {
        problem(
          `objects/${key} has resourceVersion ${metadata.resourceVersion} beyond revision ${state.revision}`,
        );
      } else if (version > state.compactedRevision) {
        const change = database.getChange(version);
        if (change?.key !== key || change.type === 'DELETED' || change.object.metadata.uid !== metadata.uid) {
          problem(`objects/${key} at ${version} is not what the change log holds there`);
        }
      }
      uidOwners.set(metadata.uid, key);
      for (const reference of metadata.ownerReferences ?? [])
        expectedDependents.add(`${reference.uid}|${key}`);
    }
    for (const [uid, key] of database.allUids()) {
      if (uidOwners.get(uid) !== key) problem(`uids/${uid} points at ${key}, which has another uid`);
      uidOwners.delete(uid);
    }
    for (const [uid, key] of uidOwners) problem(`objects/${key} (uid ${uid}) is missing from the uid index`);
    for (const entry of database.allDependentEntries()) {
      if (!expectedDependents.delete(entry)) problem(`dependents/${entry} matches no owner reference`);
    }
    for (const entry of expectedDependents)
      problem(`owner reference ${entry} is missing from the owner index`);
    let expected = state.compactedRevision + 1;
    for (const [revision, change] of database.allChanges()) {
      if (revision !== expected) problem(`change log has ${revision} where ${expected} was expected`);
      if (change.object?.metadata?.resourceVersion !== String(revision)) {
        problem(`changes/${revision} holds resourceVersion ${change.object?.metadata?.resourceVersion}`);
      }
      expected = revision + 1;
      report.changes++;
    }
    if (expected !== state.revision + 1)
      problem(`change log ends at ${expected - 1}, not at revision ${state.revision}`);
    const sequences = new Set<number>();
    for (const [sequence] of database.allEvents()) {
      sequences.add(sequence);
      report.events++;
    }
    if (report.events !== state.eventCount)
      problem(`${report.events} events stored, ${state.eventCount} counted`);
    for (const [key, sequence] of database.allEventKeys()) {
      if (!sequences.delete(sequence)) problem(`eventKeys/${key} points at a missing event ${sequence}`);
    }
    if (sequences.size > 0) problem(`${sequences.size} events have no correlation key`);
  } catch (error) {
    if (!isHornbillError(error)) throw error;
    problem(typeof error.details.reason === 'string' ? error.details.reason : error.message);
  }
  return report;
}
