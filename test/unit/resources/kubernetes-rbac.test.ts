/**
 * deploy/rbac.yaml grants what the Kubernetes backend uses: every Hornbill kind (with status
 * and finalizers), core/v1 Events, the leader-election Lease, the share managers' Leases
 * (read, broken, deleted by the share-manager controller), the RWX volumes' Services and
 * EndpointSlices (kubernetes-services.ts) and share-manager Pods (kubernetes-pods.ts). Read with PyYAML.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { LEADER_LEASE_NAME } from '../../../src/resources/leader-election.ts';
import { KIND_DEFINITIONS, KINDS } from '../../../src/resources/registry.ts';
import { shareManagerLeaseName } from '../../../src/share-manager/index.ts';
import { parseYamlDocuments, yamlParserMissing } from './yaml-parser.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

interface Manifest {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Rule[];
}

const missing = yamlParserMissing();

test('deploy/rbac.yaml covers the Kubernetes backend', { skip: missing }, () => {
  const text = fs.readFileSync(new URL('../../../deploy/rbac.yaml', import.meta.url), 'utf8');
  const documents = text.split(/^---$/m);
  const manifests = parseYamlDocuments(documents) as Manifest[];
  const byKind = (kind: string) => manifests.filter((manifest) => manifest.kind === kind);
  const allows = (rules: Rule[], group: string, resource: string, verb: string, name?: string) =>
    rules.some(
      (rule) =>
        rule.apiGroups.includes(group) &&
        rule.resources.includes(resource) &&
        rule.verbs.includes(verb) &&
        (rule.resourceNames === undefined || (name !== undefined && rule.resourceNames.includes(name))),
    );
  const [clusterRole] = byKind('ClusterRole');
  const rules = clusterRole.rules ?? [];
  for (const kind of KINDS) {
    const plural = KIND_DEFINITIONS[kind].plural;
    for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']) {
      assert.ok(allows(rules, 'hornbill.io', plural, verb), `${verb} ${plural}`);
    }
    for (const verb of ['update', 'patch']) {
      assert.ok(allows(rules, 'hornbill.io', `${plural}/status`, verb), `${verb} ${plural}/status`);
    }
    assert.ok(allows(rules, 'hornbill.io', `${plural}/finalizers`, 'update'), `update ${plural}/finalizers`);
  }
  for (const verb of ['get', 'list', 'create', 'patch'])
    assert.ok(allows(rules, '', 'events', verb), `${verb} events`);
  const [role] = byKind('Role');
  assert.equal(role.metadata.namespace, 'hornbill-system');
  const leaseRules = role.rules ?? [];
  assert.ok(allows(leaseRules, 'coordination.k8s.io', 'leases', 'create'));
  for (const verb of ['get', 'update']) {
    assert.ok(
      allows(leaseRules, 'coordination.k8s.io', 'leases', verb, LEADER_LEASE_NAME),
      `${verb} the Lease`,
    );
  }
  // The share-manager controller's side of the share managers' Leases (any volume's name).
  for (const verb of ['get', 'list', 'update', 'delete']) {
    assert.ok(
      allows(leaseRules, 'coordination.k8s.io', 'leases', verb, shareManagerLeaseName('pvc-1')),
      `${verb} share-manager Leases`,
    );
  }
  // The share-manager controller's Service and EndpointSlice per RWX volume (Kubernetes mode).
  for (const verb of ['get', 'list', 'create', 'update', 'delete']) {
    assert.ok(
      allows(leaseRules, '', 'services', verb, 'share-manager-pvc-1'),
      `${verb} share-manager Services`,
    );
    assert.ok(
      allows(leaseRules, 'discovery.k8s.io', 'endpointslices', verb, 'share-manager-pvc-1'),
      `${verb} share-manager EndpointSlices`,
    );
  }
  // The share-manager controller's Pod per RWX volume (kubernetes-pods.ts), and the manager's
  // own Pod (get: the image of those Pods when HORNBILL_IMAGE is unset).
  for (const verb of ['get', 'list', 'create', 'delete'])
    assert.ok(allows(leaseRules, '', 'pods', verb, 'share-manager-pvc-1'), `${verb} share-manager Pods`);
  assert.ok(allows(leaseRules, '', 'pods', 'get', 'hornbill-manager-abcde'), "get the manager's own Pod");
  assert.ok(!allows(leaseRules, '', 'pods', 'update', 'share-manager-pvc-1'), 'Pods are never updated');
  assert.equal(byKind('ClusterRoleBinding').length, 1);
  assert.equal(byKind('RoleBinding').length, 1);
  assert.equal(byKind('ServiceAccount')[0].metadata.name, 'hornbill-manager');
});
