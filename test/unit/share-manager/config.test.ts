/**
 * The ganesha configuration: what a good input renders to, and that no input can change the
 * configuration's structure — hostile values are refused with SHARE_MANAGER_CONFIG_INVALID.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isHornbillError } from '../../../src/errors.ts';
import {
  checkGaneshaSettings,
  DEFAULT_NFS_OPTIONS,
  type GaneshaSettings,
  parseNfsOptions,
  renderGaneshaConfig,
  shareEndpoint,
} from '../../../src/share-manager/config.ts';

const GOOD: GaneshaSettings = {
  volume: 'pvc-0123',
  address: '127.0.0.21',
  port: 20490,
  exportPath: '/var/lib/hornbill/share-manager/pvc-0123/mount',
  stateDirectory: '/var/lib/hornbill/share-manager/pvc-0123',
  nfs: DEFAULT_NFS_OPTIONS,
};

/** key → value of every `Key = value;` line, per block (blocks nest one level: FSAL in EXPORT). */
function settingsOf(config: string): Map<string, string> {
  const found = new Map<string, string>();
  const blocks: string[] = [];
  for (const raw of config.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const open = /^([A-Z0-9_]+) \{( Name = (\w+); \})?$/.exec(line);
    if (open !== null) {
      if (open[2] !== undefined) found.set(`${blocks.join('.')}.${open[1]}.Name`, open[3]);
      else blocks.push(open[1]);
      continue;
    }
    if (line === '}') {
      blocks.pop();
      continue;
    }
    const setting = /^(\w+) = (.+);$/.exec(line);
    assert.ok(setting, `unexpected line ${JSON.stringify(line)}`);
    found.set(`${blocks.join('.')}.${setting[1]}`, setting[2]);
  }
  assert.equal(blocks.length, 0, 'every block is closed');
  return found;
}

function refused(settings: GaneshaSettings, field: string): void {
  assert.throws(
    () => renderGaneshaConfig(settings),
    (error) => isHornbillError(error, 'SHARE_MANAGER_CONFIG_INVALID') && error.details.field === field,
  );
}

describe('renderGaneshaConfig', () => {
  it('writes one NFSv4.1+ TCP export of the volume with its files under the state folder', () => {
    const settings = settingsOf(renderGaneshaConfig(GOOD));
    assert.equal(settings.get('NFS_CORE_PARAM.Bind_Addr'), '127.0.0.21');
    assert.equal(settings.get('NFS_CORE_PARAM.NFS_Port'), '20490');
    assert.equal(settings.get('NFS_CORE_PARAM.Protocols'), '4');
    assert.equal(settings.get('NFS_CORE_PARAM.Enable_UDP'), 'false');
    assert.equal(settings.get('NFSV4.Minor_Versions'), '1, 2');
    assert.equal(settings.get('NFSV4.Graceless'), 'true');
    assert.equal(settings.get('NFSV4.RecoveryRoot'), `"${GOOD.stateDirectory}/recovery"`);
    assert.equal(settings.get('NFS_KRB5.CCacheDir'), `"${GOOD.stateDirectory}/credential-cache"`);
    assert.equal(settings.get('EXPORT.Path'), `"${GOOD.exportPath}"`);
    assert.equal(settings.get('EXPORT.Pseudo'), '"/pvc-0123"');
    assert.equal(settings.get('EXPORT.Squash'), 'No_Root_Squash');
    assert.equal(settings.get('EXPORT.Transports'), 'TCP');
    assert.equal(settings.get('EXPORT.FSAL.Name'), 'VFS');
  });

  it('takes the NFS options: NFSv4.0 allowed, lease lifetime, a grace period', () => {
    const settings = settingsOf(
      renderGaneshaConfig({
        ...GOOD,
        nfs: parseNfsOptions('min-version=4.0,lease-lifetime=30,grace-period=15'),
      }),
    );
    assert.equal(settings.get('NFSV4.Minor_Versions'), '0, 1, 2');
    assert.equal(settings.get('NFSV4.Lease_Lifetime'), '30');
    assert.equal(settings.get('NFSV4.Graceless'), 'false');
    assert.equal(settings.get('NFSV4.Grace_Period'), '15');
  });

  it('refuses hostile and out-of-range values, naming the field', () => {
    refused({ ...GOOD, volume: 'a; } EXPORT { Path = /' }, 'volume');
    refused({ ...GOOD, volume: 'Upper' }, 'volume');
    refused({ ...GOOD, volume: 'x'.repeat(64) }, 'volume');
    refused({ ...GOOD, address: '127.0.0.1; Enable_UDP = true' }, 'address');
    refused({ ...GOOD, address: '256.0.0.1' }, 'address');
    refused({ ...GOOD, port: 0 }, 'port');
    refused({ ...GOOD, port: 65536 }, 'port');
    refused({ ...GOOD, port: 2049.5 }, 'port');
    refused({ ...GOOD, exportPath: '/tmp/x"; Access_Type = RW; #' }, 'exportPath');
    refused({ ...GOOD, exportPath: '/tmp/a b' }, 'exportPath');
    refused({ ...GOOD, exportPath: '/tmp/../etc' }, 'exportPath');
    refused({ ...GOOD, exportPath: 'relative/path' }, 'exportPath');
    refused({ ...GOOD, exportPath: '/tmp/x\n%include /etc/passwd' }, 'exportPath');
    refused({ ...GOOD, stateDirectory: `/state/${'$'}{HOME}` }, 'stateDirectory');
    refused({ ...GOOD, nfs: { ...GOOD.nfs, leaseLifetimeSeconds: 0 } }, 'nfs.leaseLifetimeSeconds');
    refused({ ...GOOD, nfs: { ...GOOD.nfs, gracePeriodSeconds: 181 } }, 'nfs.gracePeriodSeconds');
  });

  it('never lets any string change the configuration structure (property)', () => {
    const expectedKeys = [...settingsOf(renderGaneshaConfig(GOOD)).keys()].sort();
    const field = fc.constantFrom('volume', 'address', 'exportPath', 'stateDirectory');
    fc.assert(
      fc.property(field, fc.string({ unit: 'binary', maxLength: 80 }), (name, value) => {
        let config: string;
        try {
          config = renderGaneshaConfig({ ...GOOD, [name]: value });
        } catch (error) {
          assert.ok(isHornbillError(error, 'SHARE_MANAGER_CONFIG_INVALID'), String(error));
          return;
        }
        assert.deepEqual([...settingsOf(config).keys()].sort(), expectedKeys);
      }),
      { numRuns: 2000 },
    );
  });

  it('checks before rendering: checkGaneshaSettings returns the same good settings', () => {
    assert.deepEqual(checkGaneshaSettings(GOOD), GOOD);
    assert.equal(shareEndpoint('10.0.0.5', 2049, 'pvc-1'), 'nfs://10.0.0.5:2049/pvc-1');
  });
});

describe('parseNfsOptions', () => {
  it('gives the defaults for an empty text and refuses unknown keys and bad values', () => {
    assert.deepEqual(parseNfsOptions(''), DEFAULT_NFS_OPTIONS);
    for (const text of [
      'min-version=4.3',
      'vers=4.1',
      'lease-lifetime=abc',
      'lease-lifetime=9999',
      'a',
      'grace-period=1.5',
    ])
      assert.throws(
        () => parseNfsOptions(text),
        (error) => isHornbillError(error, 'SHARE_MANAGER_CONFIG_INVALID'),
        text,
      );
  });
});
