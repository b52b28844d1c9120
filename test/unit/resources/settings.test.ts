import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import {
  parseSettingValue,
  resolveSettings,
  SETTING_NAMES,
  SETTINGS,
  settingDefaultText,
  settingValueProblem,
} from '../../../src/resources/settings.ts';

test('the Longhorn settings of the facts file, with Longhorn defaults', () => {
  const defaults = resolveSettings([]);
  assert.deepEqual(
    {
      'default-replica-count': defaults['default-replica-count'],
      'replica-soft-anti-affinity': defaults['replica-soft-anti-affinity'],
      'replica-zone-soft-anti-affinity': defaults['replica-zone-soft-anti-affinity'],
      'replica-disk-soft-anti-affinity': defaults['replica-disk-soft-anti-affinity'],
      'storage-over-provisioning-percentage': defaults['storage-over-provisioning-percentage'],
      'storage-minimal-available-percentage': defaults['storage-minimal-available-percentage'],
      'storage-reserved-percentage-for-default-disk':
        defaults['storage-reserved-percentage-for-default-disk'],
      'default-data-locality': defaults['default-data-locality'],
      'auto-salvage': defaults['auto-salvage'],
      'node-down-pod-deletion-policy': defaults['node-down-pod-deletion-policy'],
      'replica-replenishment-wait-interval': defaults['replica-replenishment-wait-interval'],
      'concurrent-replica-rebuild-per-node-limit': defaults['concurrent-replica-rebuild-per-node-limit'],
      'engine-replica-timeout': defaults['engine-replica-timeout'],
      'allow-volume-creation-with-degraded-availability':
        defaults['allow-volume-creation-with-degraded-availability'],
      'rwx-volume-fast-failover': defaults['rwx-volume-fast-failover'],
      'fast-replica-rebuild-enabled': defaults['fast-replica-rebuild-enabled'],
    },
    {
      'default-replica-count': 3,
      'replica-soft-anti-affinity': false,
      'replica-zone-soft-anti-affinity': true,
      'replica-disk-soft-anti-affinity': true,
      'storage-over-provisioning-percentage': 100,
      'storage-minimal-available-percentage': 25,
      'storage-reserved-percentage-for-default-disk': 30,
      'default-data-locality': 'disabled',
      'auto-salvage': true,
      'node-down-pod-deletion-policy': 'do-nothing',
      'replica-replenishment-wait-interval': 600,
      'concurrent-replica-rebuild-per-node-limit': 5,
      'engine-replica-timeout': 8,
      'allow-volume-creation-with-degraded-availability': true,
      'rwx-volume-fast-failover': false,
      'fast-replica-rebuild-enabled': true,
    },
  );
});

test('every default passes its own validation', () => {
  for (const name of SETTING_NAMES)
    assert.equal(settingValueProblem(name, settingDefaultText(name)), undefined, name);
});

test('values are checked by type and range', () => {
  const bad: [string, string][] = [
    ['default-replica-count', '0'],
    ['default-replica-count', '21'],
    ['default-replica-count', 'three'],
    ['default-replica-count', '2.5'],
    ['auto-salvage', 'yes'],
    ['default-data-locality', 'sometimes'],
    ['engine-replica-timeout', '7'],
    ['storage-minimal-available-percentage', '101'],
    ['default-data-path', 'relative/path'],
    ['no-such-setting', '1'],
  ];
  for (const [name, value] of bad)
    assert.notEqual(settingValueProblem(name, value), undefined, `${name}=${value}`);
  assert.equal(parseSettingValue('default-replica-count', '2'), 2);
  assert.equal(parseSettingValue('auto-salvage', 'false'), false);
  assert.equal(parseSettingValue('default-data-locality', 'best-effort'), 'best-effort');
  assert.throws(
    () => parseSettingValue('default-replica-count', '0'),
    (error: unknown) => isHornbillError(error, 'RESOURCE_INVALID') && error.details.field === 'spec.value',
  );
  for (const definition of Object.values(SETTINGS)) assert.ok(definition.description.length > 0);
});

test('resolveSettings takes values from Setting resources and ignores bad ones', () => {
  const values = resolveSettings([
    { metadata: { name: 'default-replica-count' }, spec: { value: '2' } },
    { metadata: { name: 'auto-salvage' }, spec: { value: 'false' } },
    { metadata: { name: 'engine-replica-timeout' }, spec: { value: '1' } },
    { metadata: { name: 'not-a-setting' }, spec: { value: 'x' } },
  ]);
  assert.equal(values['default-replica-count'], 2);
  assert.equal(values['auto-salvage'], false);
  assert.equal(values['engine-replica-timeout'], 8);
});
