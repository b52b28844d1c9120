/**
 * deploy/: every manifest parses (PyYAML), and the references between them hold — files of
 * the kustomization, ServiceAccounts, ConfigMap keys, Role bindings, labels and selectors,
 * named ports, volume mounts, the CSI socket paths — the hornbill containers' arguments are
 * ones the commands accept (their own flag parsers), and the StorageClass parameters are
 * ones the driver accepts (its parameter parser).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseCsiFlags } from '../../../src/cli/csi.ts';
import { parseInstanceManagerFlags } from '../../../src/cli/instance-manager.ts';
import { parseManagerFlags } from '../../../src/cli/manager.ts';
import { parseShareManagerFlags } from '../../../src/cli/share-manager.ts';
import {
  HEALTH_PORT_OFFSET,
  SHARE_MANAGER_SERVICE_ACCOUNT,
  shareManagerPodObject,
} from '../../../src/controllers/share-manager/kubernetes-pods.ts';
import { DEFAULT_LISTEN_PORTS } from '../../../src/controllers/share-manager/services.ts';
import { DRIVER_NAME } from '../../../src/csi/names.ts';
import { parseStorageClassParameters } from '../../../src/csi/parameters.ts';
import { shareManagerSpec } from '../../../src/dataplane/instance-manager/share-manager-spec.ts';
import { isSettingName, settingValueProblem } from '../../../src/resources/settings.ts';
import { parseYamlDocuments, yamlParserMissing } from '../resources/yaml-parser.ts';

// biome-ignore lint/suspicious/noExplicitAny: manifests are whatever the YAML says; the checks below look
type Manifest = Record<string, any>;

const DEPLOY = new URL('../../../deploy/', import.meta.url).pathname;
const NAMESPACE = 'hornbill-system';
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'CSIDriver',
  'StorageClass',
]);
/** Applied on its own: it needs the Prometheus Operator's CRDs. */
const OUTSIDE_KUSTOMIZATION = ['servicemonitor.yaml'];
const missing = yamlParserMissing();

function load(file: string): Manifest[] {
  const text = fs.readFileSync(path.join(DEPLOY, file), 'utf8');
  return (parseYamlDocuments(text.split(/^---$/m)) as (Manifest | null)[]).filter(
    (document) => document !== null,
  );
}

let loaded: ReturnType<typeof loadFresh> | undefined;

/** Parsed once per file run: PyYAML is slow on the CRDs. */
function loadAll() {
  loaded ??= loadFresh();
  return loaded;
}

function loadFresh() {
  const [kustomization] = load('kustomization.yaml');
  const files: string[] = [...kustomization.resources, ...OUTSIDE_KUSTOMIZATION];
  const manifests: Manifest[] = files.flatMap((file) =>
    load(file).map((manifest) => ({ ...manifest, file })),
  );
  const find = (kind: string, name: string) =>
    manifests.filter((item) => item.kind === kind && item.metadata?.name === name);
  const workloads = manifests.filter((item) => ['DaemonSet', 'Deployment'].includes(item.kind));
  return { kustomization, files, manifests, find, workloads };
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

test('the kustomization lists every manifest, each parses and names what it is', { skip: missing }, () => {
  const { kustomization, files, manifests } = loadAll();
  for (const file of files) assert.ok(fs.existsSync(path.join(DEPLOY, file)), `${file} exists`);
  for (const crd of fs.readdirSync(path.join(DEPLOY, 'crds')))
    assert.ok(kustomization.resources.includes(`crds/${crd}`), `crds/${crd} is in kustomization.yaml`);
  for (const file of fs
    .readdirSync(DEPLOY)
    .filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml'))
    assert.ok(files.includes(file), `${file} is installed by kustomization.yaml or documented`);
  const seen = new Set<string>();
  for (const manifest of manifests) {
    assert.ok(
      manifest.apiVersion && manifest.kind && manifest.metadata?.name,
      `${manifest.file}: apiVersion, kind, name`,
    );
    if (!CLUSTER_SCOPED.has(manifest.kind))
      assert.equal(manifest.metadata.namespace, NAMESPACE, `${manifest.kind}/${manifest.metadata.name}`);
    const key = `${manifest.kind}/${manifest.metadata.namespace ?? ''}/${manifest.metadata.name}`;
    assert.ok(!seen.has(key), `${key} is defined once`);
    seen.add(key);
  }
  assert.equal(manifests.filter((manifest) => manifest.kind === 'Namespace').length, 1);
  assert.equal(
    manifests.filter((manifest) => manifest.kind === 'CustomResourceDefinition').length,
    fs.readdirSync(path.join(DEPLOY, 'crds')).length,
  );
});

test('workloads: selectors, ServiceAccounts (one per component), ConfigMap keys, volumes, named ports', {
  skip: missing,
}, () => {
  const { workloads, find } = loadAll();
  const accounts = new Set<string>();
  for (const workload of workloads) {
    const name = `${workload.kind}/${workload.metadata.name}`;
    const pod = workload.spec.template;
    assert.ok(
      matches(workload.spec.selector.matchLabels, pod.metadata.labels),
      `${name}: selector matches its pods`,
    );
    const account = pod.spec.serviceAccountName;
    assert.equal(find('ServiceAccount', account).length, 1, `${name}: ServiceAccount ${account} is defined`);
    assert.ok(!accounts.has(account), `${name}: its own ServiceAccount`);
    accounts.add(account);
    const volumes = new Set((pod.spec.volumes ?? []).map((volume: Manifest) => volume.name));
    for (const volume of pod.spec.volumes ?? []) {
      if (volume.configMap)
        assert.equal(
          find('ConfigMap', volume.configMap.name).length,
          1,
          `${name}: ConfigMap ${volume.configMap.name}`,
        );
      // An optional Secret is the operator's to create (the manager's API tokens).
      if (volume.secret && volume.secret.optional !== true)
        assert.equal(
          find('Secret', volume.secret.secretName).length,
          1,
          `${name}: Secret ${volume.secret.secretName}`,
        );
    }
    for (const container of pod.spec.containers) {
      const where = `${name}/${container.name}`;
      for (const mount of container.volumeMounts ?? [])
        assert.ok(volumes.has(mount.name), `${where}: volume ${mount.name}`);
      for (const variable of container.env ?? []) {
        const configMapKey = variable.valueFrom?.configMapKeyRef;
        if (configMapKey) {
          const [configMap] = find('ConfigMap', configMapKey.name);
          assert.ok(configMap, `${where}: ConfigMap ${configMapKey.name}`);
          assert.ok(
            configMapKey.key in configMap.data,
            `${where}: key ${configMapKey.key} of ${configMapKey.name}`,
          );
        }
        const secretKey = variable.valueFrom?.secretKeyRef;
        if (secretKey)
          assert.equal(find('Secret', secretKey.name).length, 1, `${where}: Secret ${secretKey.name}`);
      }
      const portNames = (container.ports ?? []).map((port: Manifest) => port.name);
      assert.equal(new Set(portNames).size, portNames.length, `${where}: port names are unique`);
      for (const probe of [container.livenessProbe, container.readinessProbe].filter(Boolean)) {
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
        if (typeof port === 'string') assert.ok(portNames.includes(port), `${where}: probe port ${port}`);
      }
    }
  }
  assert.deepEqual([...accounts].sort(), [
    'hornbill-csi-controller',
    'hornbill-csi-plugin',
    'hornbill-instance-manager',
    'hornbill-manager',
  ]);
});

test('Services and the ServiceMonitor select pods and ports that exist', { skip: missing }, () => {
  const { manifests, workloads } = loadAll();
  const services = manifests.filter((manifest) => manifest.kind === 'Service');
  for (const service of services) {
    const selected = workloads.filter((workload) =>
      matches(service.spec.selector, workload.spec.template.metadata.labels),
    );
    assert.ok(selected.length > 0, `Service ${service.metadata.name} selects pods`);
    const podPorts = selected.flatMap((workload) =>
      workload.spec.template.spec.containers.flatMap((container: Manifest) => container.ports ?? []),
    );
    for (const port of service.spec.ports) {
      const target = port.targetPort ?? port.port;
      assert.ok(
        podPorts.some(
          (candidate: Manifest) => candidate.name === target || candidate.containerPort === target,
        ),
        `Service ${service.metadata.name}: targetPort ${target}`,
      );
    }
  }
  const [monitor] = manifests.filter((manifest) => manifest.kind === 'ServiceMonitor');
  const values: string[] = monitor.spec.selector.matchExpressions[0].values;
  const monitored = services.filter((service) =>
    values.includes(service.metadata.labels?.['app.kubernetes.io/component']),
  );
  assert.equal(monitored.length, 2);
  for (const endpoint of monitor.spec.endpoints)
    assert.ok(
      monitored.some((service) => service.spec.ports.some((port: Manifest) => port.name === endpoint.port)),
      `endpoint port ${endpoint.port}`,
    );
});

test('RBAC: bindings name roles and ServiceAccounts that exist; no wildcards; the share-manager Pods only hold their Leases; the instance manager has no API access', {
  skip: missing,
}, () => {
  const { manifests, find } = loadAll();
  for (const binding of manifests.filter((manifest) => manifest.kind.endsWith('Binding'))) {
    const roleKind = binding.roleRef.kind;
    assert.equal(
      find(roleKind, binding.roleRef.name).length,
      1,
      `${binding.metadata.name}: ${roleKind} ${binding.roleRef.name}`,
    );
    for (const subject of binding.subjects) {
      assert.equal(subject.kind, 'ServiceAccount');
      assert.equal(
        find('ServiceAccount', subject.name).length,
        1,
        `${binding.metadata.name}: ServiceAccount ${subject.name}`,
      );
      assert.notEqual(subject.name, 'hornbill-instance-manager', `${binding.metadata.name}: no API access`);
      if (subject.name === SHARE_MANAGER_SERVICE_ACCOUNT)
        assert.equal(binding.roleRef.name, 'hornbill-share-manager-leases', `${binding.metadata.name}`);
    }
  }
  for (const role of manifests.filter(
    (manifest) => manifest.kind === 'Role' || manifest.kind === 'ClusterRole',
  ))
    for (const rule of role.rules)
      for (const field of ['apiGroups', 'resources', 'verbs'])
        assert.ok(!rule[field].includes('*'), `${role.metadata.name}: no * in ${field}`);
  // The share managers run in Pods of their own (kubernetes-pods.ts) and campaign for their
  // Leases with the ServiceAccount hornbill-share-manager: get, create, update of Leases in
  // hornbill-system, nothing more. The instance manager needs no token at all.
  const [instanceManagerAccount] = find('ServiceAccount', 'hornbill-instance-manager');
  assert.equal(instanceManagerAccount.automountServiceAccountToken, false);
  const [shareManagerAccount] = find('ServiceAccount', SHARE_MANAGER_SERVICE_ACCOUNT);
  assert.equal(shareManagerAccount.metadata.namespace, NAMESPACE);
  assert.equal(shareManagerAccount.automountServiceAccountToken, true);
  const shareManagerBindings = manifests.filter(
    (manifest) =>
      manifest.kind.endsWith('Binding') &&
      manifest.subjects.some((subject: Manifest) => subject.name === SHARE_MANAGER_SERVICE_ACCOUNT),
  );
  assert.deepEqual(
    shareManagerBindings.map((binding) => `${binding.kind} ${binding.metadata.namespace}`),
    [`RoleBinding ${NAMESPACE}`],
  );
  const [shareManagerRole] = find('Role', 'hornbill-share-manager-leases');
  assert.equal(shareManagerRole.metadata.namespace, NAMESPACE);
  assert.deepEqual(shareManagerRole.rules, [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ]);
  // The manager reads, breaks (update) and deletes them, in hornbill-system only.
  const managerLeaseVerbs = new Set(
    manifests
      .filter((manifest) => manifest.kind === 'Role' && manifest.metadata.namespace === NAMESPACE)
      .filter((role) =>
        find('RoleBinding', role.metadata.name).some((binding) =>
          binding.subjects.some((subject: Manifest) => subject.name === 'hornbill-manager'),
        ),
      )
      .flatMap((role) => role.rules)
      .filter(
        (rule: Manifest) =>
          rule.apiGroups.includes('coordination.k8s.io') &&
          rule.resources.includes('leases') &&
          rule.resourceNames === undefined,
      )
      .flatMap((rule: Manifest) => rule.verbs),
  );
  for (const verb of ['get', 'list', 'update', 'delete'])
    assert.ok(managerLeaseVerbs.has(verb), `the manager may ${verb} share-manager Leases`);
  // The manager creates, reads and deletes the share-manager Pods (and reads its own) there.
  const managerPodVerbs = new Set(
    manifests
      .filter((manifest) => manifest.kind === 'Role' && manifest.metadata.namespace === NAMESPACE)
      .filter((role) =>
        find('RoleBinding', role.metadata.name).some((binding) =>
          binding.subjects.some((subject: Manifest) => subject.name === 'hornbill-manager'),
        ),
      )
      .flatMap((role) => role.rules)
      .filter(
        (rule: Manifest) =>
          rule.apiGroups.includes('') && rule.resources.includes('pods') && rule.resourceNames === undefined,
      )
      .flatMap((rule: Manifest) => rule.verbs),
  );
  for (const verb of ['get', 'list', 'create', 'delete'])
    assert.ok(managerPodVerbs.has(verb), `the manager may ${verb} share-manager Pods`);
  // The CSI controller can write the three kinds it owns, and only read the others.
  const [csiRole] = find('Role', 'hornbill-csi-controller');
  const writable = csiRole.rules
    .filter((rule: Manifest) => rule.apiGroups.includes('hornbill.io') && rule.verbs.includes('create'))
    .flatMap((rule: Manifest) => rule.resources)
    .sort();
  assert.deepEqual(writable, ['snapshots', 'volumeattachments', 'volumes']);
});

/** $(VAR) in args, with the values the kubelet would put there. */
function expandArguments(container: Manifest, find: (kind: string, name: string) => Manifest[]): string[] {
  const values: Record<string, string> = {};
  const samples: Record<string, string> = {
    'spec.nodeName': 'node-1',
    'status.hostIP': '10.0.0.21',
    'metadata.name': 'pod-1',
  };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) values[variable.name] = variable.value;
    else if (variable.valueFrom?.fieldRef)
      values[variable.name] = samples[variable.valueFrom.fieldRef.fieldPath];
    else if (variable.valueFrom?.configMapKeyRef) {
      const reference = variable.valueFrom.configMapKeyRef;
      values[variable.name] = find('ConfigMap', reference.name)[0].data[reference.key];
    }
  }
  return (container.args ?? []).map((argument: string) =>
    argument.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name: string) => {
      assert.ok(name in values, `${container.name}: $(${name}) is defined in env`);
      return values[name];
    }),
  );
}

test('hornbill containers run commands with arguments the commands accept', { skip: missing }, () => {
  const { manifests, workloads, find } = loadAll();
  const commands = new Set<string>();
  for (const workload of workloads) {
    const spec = workload.spec.template.spec;
    for (const container of spec.containers.filter((candidate: Manifest) =>
      candidate.image.startsWith('hornbill/hornbill'),
    )) {
      const [command, ...argv] = expandArguments(container, find);
      commands.add(command);
      const ports = Object.fromEntries(
        (container.ports ?? []).map((port: Manifest) => [port.name, port.containerPort]),
      );
      if (command === 'csi') {
        const flags = parseCsiFlags(argv, {});
        assert.equal(flags.namespace, NAMESPACE);
        const socketMount = container.volumeMounts.find((mount: Manifest) => mount.name === 'socket-dir');
        assert.equal(
          path.dirname(flags.endpoint.replace(/^unix:\/\//, '')),
          socketMount.mountPath,
          'the socket is in the shared folder',
        );
        if (flags.mode === 'node') {
          assert.ok(
            flags.hostNamespaces && spec.hostPID && container.securityContext.privileged,
            'node plugin: host namespaces',
          );
          const registrar = spec.containers.find(
            (candidate: Manifest) => candidate.name === 'node-driver-registrar',
          );
          const registration = registrar.args
            .find((argument: string) => argument.startsWith('--kubelet-registration-path='))
            .split('=')[1];
          const socketVolume = spec.volumes.find((volume: Manifest) => volume.name === 'socket-dir');
          assert.equal(
            registration,
            `${socketVolume.hostPath.path}/csi.sock`,
            'kubelet finds the socket where the plugin listens',
          );
          assert.ok(registration.includes(DRIVER_NAME));
          assert.ok(
            container.volumeMounts.some(
              (mount: Manifest) =>
                mount.mountPath === '/var/lib/kubelet' && mount.mountPropagation === 'Bidirectional',
            ),
          );
        } else {
          const sidecars = spec.containers.map((candidate: Manifest) => candidate.name);
          for (const sidecar of ['csi-provisioner', 'csi-attacher', 'csi-resizer', 'csi-snapshotter'])
            assert.ok(sidecars.includes(sidecar), sidecar);
          const attacher = spec.containers.find((candidate: Manifest) => candidate.name === 'csi-attacher');
          const timeout = Number(
            attacher.args.find((argument: string) => argument.startsWith('--timeout=')).slice(10, -1),
          );
          assert.ok(
            timeout * 1000 > flags.attachWaitMs,
            "the attacher's timeout outlasts the driver's attach wait",
          );
        }
      } else if (command === 'instance-manager') {
        const flags = parseInstanceManagerFlags(argv);
        assert.equal(spec.hostNetwork, true);
        assert.equal(container.securityContext.privileged, true);
        assert.deepEqual(
          [ports.grpc, ports.iscsi, ports.metrics],
          [flags.grpcPort, flags.iscsiPort, flags.metricsPort],
        );
        assert.deepEqual([ports.grpc, ports.iscsi, ports.metrics], [8500, 3260, 9502]);
        // RWX share-manager Pods (host network) listen on the node's address on ports of
        // DEFAULT_LISTEN_PORTS, their /healthz HEALTH_PORT_OFFSET above: none of those may be
        // one of the instance manager's own ports.
        const first = DEFAULT_LISTEN_PORTS.first;
        const last = DEFAULT_LISTEN_PORTS.last + HEALTH_PORT_OFFSET;
        for (const port of [flags.grpcPort, flags.iscsiPort, flags.metricsPort, 2049])
          assert.ok(port < first || port > last, `share-manager ports ${first}-${last} avoid ${port}`);
        if (flags.replicaPorts !== undefined)
          assert.ok(
            flags.replicaPorts.last < first || flags.replicaPorts.first > last,
            'share-manager ports avoid the replica ports',
          );
      } else if (command === 'manager') {
        for (let index = 0; index < argv.length; index++) {
          if (argv[index] !== '--setting') continue;
          const [name, value] = argv[index + 1].split(/=(.*)/s);
          assert.ok(isSettingName(name), `setting ${name} is known`);
          assert.equal(settingValueProblem(name, value), undefined, `setting ${name}=${value}`);
        }
        const flags = parseManagerFlags(argv, {});
        assert.equal(flags.store, 'kubernetes');
        assert.ok(flags.store === 'kubernetes');
        assert.equal(flags.listen.port, ports.http);
        assert.equal(flags.namespace, NAMESPACE);
        assert.equal(flags.identity, 'pod-1', 'the identity is the pod name');
        assert.equal(flags.instanceManagers, undefined, 'the instance managers are discovered');
        const [instanceManagers] = find('DaemonSet', 'hornbill-instance-manager');
        const selector = Object.fromEntries(
          flags.instanceManagerSelector.split(',').map((requirement) => requirement.split('=')),
        );
        assert.ok(
          matches(selector, instanceManagers.spec.template.metadata.labels),
          'the selector matches the instance-manager pods',
        );
        const tokensMount = container.volumeMounts.find((mount: Manifest) => mount.name === 'api-tokens');
        assert.equal(
          path.dirname(flags.tokensFile ?? ''),
          tokensMount.mountPath,
          'the tokens file is mounted',
        );
        const tokensVolume = spec.volumes.find((volume: Manifest) => volume.name === 'api-tokens');
        assert.equal(path.basename(flags.tokensFile ?? ''), 'api-tokens.json');
        assert.equal(tokensVolume.secret.optional, true);
        const discoveryRoles = manifests
          .filter((item) => item.kind === 'RoleBinding')
          .filter((binding) =>
            binding.subjects.some((subject: Manifest) => subject.name === spec.serviceAccountName),
          )
          .flatMap((binding) => find(binding.roleRef.kind, binding.roleRef.name));
        for (const verb of ['list', 'watch'])
          assert.ok(
            discoveryRoles.some(
              (role) =>
                role.metadata.namespace === NAMESPACE &&
                role.rules.some(
                  (rule: Manifest) =>
                    rule.apiGroups.includes('') &&
                    rule.resources.includes('pods') &&
                    rule.verbs.includes(verb),
                ),
            ),
            `the manager may ${verb} pods in ${NAMESPACE} (instance-manager discovery)`,
          );
        // RWX volumes' stable addresses: a Service and an EndpointSlice share-manager-<volume>.
        for (const [group, resource] of [
          ['', 'services'],
          ['discovery.k8s.io', 'endpointslices'],
        ])
          for (const verb of ['get', 'list', 'create', 'update', 'delete'])
            assert.ok(
              discoveryRoles.some(
                (role) =>
                  role.metadata.namespace === NAMESPACE &&
                  role.rules.some(
                    (rule: Manifest) =>
                      rule.apiGroups.includes(group) &&
                      rule.resources.includes(resource) &&
                      rule.verbs.includes(verb) &&
                      rule.resourceNames === undefined,
                  ),
              ),
              `the manager may ${verb} ${resource} in ${NAMESPACE} (share-manager Services)`,
            );
      } else assert.fail(`unknown hornbill command ${command}`);
    }
  }
  assert.deepEqual([...commands].sort(), ['csi', 'instance-manager', 'manager']);
});

test('the share-manager Pod the controller makes fits the deployment: its ServiceAccount, its arguments, the disk and image of the instance managers', {
  skip: missing,
}, () => {
  const { find } = loadAll();
  const [instanceManagers] = find('DaemonSet', 'hornbill-instance-manager');
  const instanceManager = instanceManagers.spec.template.spec.containers[0];
  const disk = parseInstanceManagerFlags(expandArguments(instanceManager, find).slice(1)).disks[0];
  const spec = shareManagerSpec(
    {
      name: 'share-manager-pvc-1',
      volumeName: 'pvc-1',
      address: '10.0.0.21',
      port: DEFAULT_LISTEN_PORTS.first,
      source: 'device',
      deviceEndpoint: 'iscsi://10.0.0.21:3260/iqn.2019-10.io.hornbill:pvc-1/1',
      leaseBackend: 'kubernetes',
      leaseNamespace: NAMESPACE,
    },
    [disk],
  );
  const pod = shareManagerPodObject({
    spec,
    nodeName: 'node-1',
    namespace: NAMESPACE,
    image: instanceManager.image,
    serviceAccountName: SHARE_MANAGER_SERVICE_ACCOUNT,
  }) as Manifest;
  assert.equal(find('ServiceAccount', pod.spec.serviceAccountName).length, 1);
  const [command, ...argv] = pod.spec.containers[0].args;
  assert.equal(command, 'share-manager');
  const flags = parseShareManagerFlags(argv);
  assert.equal(flags.leaseBackend, 'kubernetes');
  assert.equal(flags.leaseNamespace, NAMESPACE);
  assert.equal(flags.kubeconfig, undefined, 'in-cluster: the ServiceAccount token');
  assert.ok(flags.hostNamespaces && pod.spec.hostPID, 'iscsiadm in the host namespaces');
  assert.ok(flags.stateDirectory.startsWith(`${disk}/`), 'the state folder is on the mounted disk');
  const dataVolume = pod.spec.volumes.find((volume: Manifest) => volume.name === 'data');
  assert.equal(dataVolume.hostPath.path, instanceManagers.spec.template.spec.volumes[0].hostPath.path);
  assert.equal(pod.spec.containers[0].volumeMounts[0].mountPropagation, 'Bidirectional');
  assert.equal(flags.healthPort, pod.spec.containers[0].readinessProbe.httpGet.port);
});

test('the CSIDriver, the StorageClass parameters the driver accepts, the default settings', {
  skip: missing,
}, () => {
  const { find } = loadAll();
  const [driver] = find('CSIDriver', DRIVER_NAME);
  assert.equal(driver.spec.attachRequired, true);
  const [storageClass] = find('StorageClass', 'hornbill');
  assert.equal(storageClass.provisioner, DRIVER_NAME);
  assert.equal(storageClass.allowVolumeExpansion, true);
  const parsed = parseStorageClassParameters(storageClass.parameters);
  assert.equal(parsed.spec.numberOfReplicas, 3);
  assert.equal(parsed.spec.staleReplicaTimeout, 2880);
  assert.equal(parsed.context.fsType, 'ext4');
  const [settings] = find('ConfigMap', 'hornbill-default-settings');
  for (const [name, value] of Object.entries(settings.data as Record<string, string>)) {
    assert.ok(isSettingName(name), `${name} is a setting`);
    assert.equal(settingValueProblem(name, value), undefined, `${name}=${value}`);
  }
});

test('the image: Node 24 and the host tools the node plugin calls', () => {
  const dockerfile = fs.readFileSync(path.join(DEPLOY, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^FROM node:24-bookworm-slim/m);
  for (const tool of ['open-iscsi', 'nfs-common', 'e2fsprogs', 'xfsprogs'])
    assert.match(dockerfile, new RegExp(`\\b${tool}\\b`));
  assert.match(dockerfile, /ENTRYPOINT .*bin\/hornbill\.mjs/);
});
