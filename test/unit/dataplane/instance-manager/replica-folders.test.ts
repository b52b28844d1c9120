import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ReplicaFolders } from '../../../../src/dataplane/instance-manager/replica-folders.ts';
import { isHornbillError } from '../../../../src/errors.ts';
import { tempDirectory } from '../../../helpers/temp.ts';

test('a folder being removed is reserved until it is gone, then reported once', async (t) => {
  const root = tempDirectory(t);
  const directory = path.join(root, 'replicas', 'vol-r-1');
  fs.mkdirSync(path.join(directory, 'layers'), { recursive: true });
  fs.writeFileSync(path.join(directory, 'index.mdb'), 'x');
  for (let index = 0; index < 200; index++) fs.writeFileSync(path.join(directory, 'layers', `${index}`), 'y');
  const removed: string[] = [];
  const folders = new ReplicaFolders((gone) => removed.push(gone));
  const removal = folders.remove(directory);
  assert.throws(
    () => folders.checkNotRemoving(directory, 'vol-r-2'),
    (error) => isHornbillError(error, 'INSTANCE_CONFLICT'),
  );
  assert.equal(await folders.removeLeftOver(directory, undefined), false, 'a second removal is a no-op');
  await removal;
  assert.equal(fs.existsSync(directory), false);
  assert.deepEqual(removed, [directory]);
  folders.checkNotRemoving(directory, 'vol-r-2');
});

test('a left-over folder is removed only when no instance uses it and it holds a replica', async (t) => {
  const root = tempDirectory(t);
  const folders = new ReplicaFolders(() => {});
  const replica = path.join(root, 'replica');
  fs.mkdirSync(replica);
  fs.writeFileSync(path.join(replica, 'index.mdb'), 'x');
  await assert.rejects(folders.removeLeftOver(replica, 'vol-r-1'), (error) =>
    isHornbillError(error, 'INSTANCE_CONFLICT'),
  );
  assert.ok(fs.existsSync(replica));
  const other = path.join(root, 'photos');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'holiday.jpg'), 'x');
  await assert.rejects(folders.removeLeftOver(other, undefined), (error) =>
    isHornbillError(error, 'INSTANCE_CONFLICT'),
  );
  assert.ok(fs.existsSync(path.join(other, 'holiday.jpg')));
  assert.equal(await folders.removeLeftOver(path.join(root, 'missing'), undefined), false);
  assert.equal(await folders.removeLeftOver(replica, undefined), true);
  assert.equal(fs.existsSync(replica), false);
});
