import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { LogFiles } from '../../../src/manager/log-files.ts';
import { tempDirectory } from '../../helpers/temp.ts';

test('each process gets its own file; a full file rotates to .1 and keeps at most two', (t) => {
  const directory = path.join(tempDirectory(t), 'logs');
  const files = new LogFiles(directory, 100);
  for (let index = 0; index < 12; index++) files.write('node-1', `line ${index} ${'x'.repeat(20)}`);
  files.write('manager', 'started');
  files.write('../escape', 'refused');
  files.close();
  assert.deepEqual(fs.readdirSync(directory).sort(), ['manager.log', 'node-1.log', 'node-1.log.1']);
  const current = fs.readFileSync(path.join(directory, 'node-1.log'), 'utf8');
  const previous = fs.readFileSync(path.join(directory, 'node-1.log.1'), 'utf8');
  assert.ok(current.length <= 100 && previous.length <= 100);
  assert.match(current, /line 11 /, 'the newest line is in the current file');
  assert.equal(fs.readFileSync(path.join(directory, 'manager.log'), 'utf8'), 'started\n');
  // Reopened, a file continues where it was (its size counts toward the limit).
  const again = new LogFiles(directory, 100);
  again.write('manager', 'again');
  again.close();
  assert.equal(fs.readFileSync(path.join(directory, 'manager.log'), 'utf8'), 'started\nagain\n');
});
