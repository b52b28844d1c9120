/**
 * What a node needs to serve Hornbill volumes, as Node conditions the manager can set
 * (Longhorn's names): RequiredPackages (iscsiadm, mkfs.ext4, blkid …), NFSClientInstalled
 * (mount.nfs4, for RWX), Multipathd (False is good: a running multipathd may claim iSCSI
 * devices — seed §4-1). A node whose RequiredPackages is False should not take volumes it
 * cannot attach; the plugin reports it when it starts instead of failing at attach time.
 *
 * ```ts
 * const conditions = hostConditions(await host.checkTools());
 * // [{ type: 'RequiredPackages', status: 'False', reason: 'PackagesMissing', message: 'install open-iscsi (iscsiadm)' }, …]
 * ```
 */
import type { HostToolReport } from './types.ts';

/** Command → the Debian package that brings it. */
export const REQUIRED_TOOLS: Record<string, string> = {
  iscsiadm: 'open-iscsi',
  blkid: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  'mkfs.ext4': 'e2fsprogs',
  resize2fs: 'e2fsprogs',
};
export const OPTIONAL_TOOLS: Record<string, string> = {
  'mkfs.xfs': 'xfsprogs',
  xfs_growfs: 'xfsprogs',
  'mount.nfs4': 'nfs-common',
  blockdev: 'util-linux',
};
export const ALL_TOOLS = [...Object.keys(REQUIRED_TOOLS), ...Object.keys(OPTIONAL_TOOLS)];

export interface HostCondition {
  type: 'RequiredPackages' | 'NFSClientInstalled' | 'Multipathd';
  status: 'True' | 'False';
  reason: string;
  message: string;
}

function missingOf(report: HostToolReport, tools: Record<string, string>): string[] {
  return Object.keys(tools).filter((tool) => report.tools[tool] !== true);
}

function packagesFor(missing: string[]): string {
  const byPackage = new Map<string, string[]>();
  for (const tool of missing) {
    const name = REQUIRED_TOOLS[tool] ?? OPTIONAL_TOOLS[tool] ?? tool;
    byPackage.set(name, [...(byPackage.get(name) ?? []), tool]);
  }
  return [...byPackage].map(([name, tools]) => `${name} (${tools.join(', ')})`).join(', ');
}

export function hostConditions(report: HostToolReport): HostCondition[] {
  const missing = missingOf(report, REQUIRED_TOOLS);
  const nfs = report.tools['mount.nfs4'] === true;
  return [
    missing.length === 0
      ? {
          type: 'RequiredPackages',
          status: 'True',
          reason: 'PackagesInstalled',
          message: 'every required host tool is installed',
        }
      : {
          type: 'RequiredPackages',
          status: 'False',
          reason: 'PackagesMissing',
          message: `install ${packagesFor(missing)} on this node (apt-get install / dnf install), then restart the hornbill-csi-plugin pod`,
        },
    nfs
      ? {
          type: 'NFSClientInstalled',
          status: 'True',
          reason: 'NFSClientInstalled',
          message: 'mount.nfs4 is installed',
        }
      : {
          type: 'NFSClientInstalled',
          status: 'False',
          reason: 'NFSClientMissing',
          message: 'install nfs-common (nfs-utils on RHEL) to mount RWX volumes on this node',
        },
    report.multipathdRunning
      ? {
          type: 'Multipathd',
          status: 'True',
          reason: 'MultipathdRunning',
          message:
            'multipathd runs and may claim Hornbill iSCSI devices: add `blacklist { device { vendor "HORNBILL" } }` to /etc/multipath.conf and restart multipathd',
        }
      : {
          type: 'Multipathd',
          status: 'False',
          reason: 'MultipathdNotRunning',
          message: 'multipathd is not running',
        },
  ];
}

/** The tools missing for an operation, as the error message's fix. */
export function missingToolMessage(tool: string): string {
  const name = REQUIRED_TOOLS[tool] ?? OPTIONAL_TOOLS[tool] ?? tool;
  return `${tool} is not installed on this node: install the ${name} package`;
}
