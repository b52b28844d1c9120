/**
 * Serves one 64 MiB Hornbill volume (a replica store in a temp folder) over iSCSI on
 * 127.0.0.1, for running iscsi-test-cu or other initiators by hand:
 *
 *   node_modules/.bin/node test/conformance/serve-iscsi-volume.ts [port]
 *   iscsi-test-cu -d -t SCSI.Read10 iscsi://127.0.0.1:3260/iqn.2026-11.io.hornbill:conformance/0 <same URL>
 *
 * Ctrl-C (or SIGTERM) stops the target and removes the folder. HORNBILL_ISCSI_TRACE=1 logs
 * every PDU header the target receives.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IscsiTarget } from '../../src/dataplane/iscsi/target.ts';
import { StoreBlockDevice } from '../../src/dataplane/store-block-device.ts';
import { stderrLogger } from '../../src/logging.ts';
import { ReplicaStore } from '../../src/storage/replica-store.ts';

const port = Number(process.argv[2] ?? 3260);
const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-iscsi-'));
const store = ReplicaStore.create(path.join(directory, 'replica'), { sizeBytes: 64 * 1024 * 1024 });
const target = new IscsiTarget({
  port,
  logger: stderrLogger('iscsi', 'debug'),
});
target.addVolume('conformance', new StoreBlockDevice(store, 'conformance'));
const address = await target.listen();
process.stdout.write(`iscsi://${address.host}:${address.port}/iqn.2026-11.io.hornbill:conformance/0\n`);

async function stop(): Promise<void> {
  await target.close();
  store.close();
  fs.rmSync(directory, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
