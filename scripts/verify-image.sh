#!/usr/bin/env bash
# Checks a Hornbill image archive (what scripts/build-image.sh writes, or `docker save`'s
# output) for real, without a Docker engine: it unpacks the ARCHIVE into a fresh folder —
# from the archive only — and runs the image's programs there with chroot.
#
#   sudo scripts/verify-image.sh ARCHIVE [--keep]
#
# It checks:
#   - the archive: manifest.json (docker-archive), the config and every layer's sha256
#     against its name and the config's diff_ids; with skopeo installed, that skopeo reads
#     it as a docker-archive (what `skopeo copy docker-archive:…` pushes) and, when it has
#     an index.json, as an OCI layout;
#   - the config: ENTRYPOINT, CMD, WORKDIR and ENV as deploy/Dockerfile sets them;
#   - the root filesystem (the layers unpacked in order, whiteouts applied), in a chroot with
#     the config's environment and working folder, in new PID and mount namespaces so that
#     tini runs as PID 1, as in a container:
#       the ENTRYPOINT with `--help` (tini → node /opt/hornbill/bin/hornbill.mjs --help),
#       node --version (24 or newer), tini --version, iscsiadm --version, ganesha.nfsd -v, mkfs.ext4 -V,
#       mkfs.xfs -V, mount.nfs -V, blkid -V, nsenter --version,
#       and that Hornbill's CRC32C is the native addon (build/Release/hornbill_native.node,
#       loaded by src/native.ts), not the portable fallback, with the right checksums.
# --keep leaves the unpacked folder (its path is printed). Needs root (chroot, unshare, mount).
set -euo pipefail

ARCHIVE=${1:?usage: verify-image.sh ARCHIVE [--keep]}
KEEP=0
[ "${2:-}" = --keep ] && KEEP=1
[ -f "$ARCHIVE" ] || { echo "verify-image: no such file: $ARCHIVE" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "verify-image: run as root (chroot needs it)" >&2; exit 2; }
ARCHIVE=$(cd "$(dirname "$ARCHIVE")" && pwd)/$(basename "$ARCHIVE")

DIR=$(mktemp -d /tmp/hornbill-verify.XXXXXX)
ROOT=$DIR/rootfs
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "kept: $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
FAILURES=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; FAILURES=$((FAILURES + 1)); }

echo "== unpacking $ARCHIVE into $DIR"
mkdir -p "$DIR/archive" "$ROOT"
TARBALL=$ARCHIVE
case "$ARCHIVE" in
  # docker load reads a gzipped archive; skopeo's docker-archive: transport does not.
  *.gz | *.tgz) TARBALL=$DIR/image.tar && gzip -dc "$ARCHIVE" >"$TARBALL" ;;
esac
tar -xf "$TARBALL" -C "$DIR/archive"

# The archive's structure, digests and config; prints the layer files, one a line, then
# the config as KEY=JSON lines for the checks below.
python3 - "$DIR/archive" "$DIR/layers" "$DIR/config.env" <<'PY'
import hashlib, json, os, sys
root, layers_out, config_out = sys.argv[1:4]
def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
manifest = json.load(open(os.path.join(root, 'manifest.json')))
assert len(manifest) == 1, 'one image in the archive'
image = manifest[0]
print('  tags:', ', '.join(image.get('RepoTags') or []))
config_path = os.path.join(root, image['Config'])
config_digest = sha256(config_path)
if image['Config'].startswith('blobs/sha256/'):
    assert image['Config'].endswith(config_digest), 'config digest'
config = json.load(open(config_path))
diff_ids = config['rootfs']['diff_ids']
assert len(diff_ids) == len(image['Layers']), 'one diff_id per layer'
with open(layers_out, 'w') as out:
    for layer, diff_id in zip(image['Layers'], diff_ids):
        path = os.path.join(root, layer)
        digest = sha256(path)
        # An uncompressed layer's digest is its diff_id (a compressed one would not be).
        assert 'sha256:' + digest == diff_id, f'{layer}: sha256 {digest} is not the diff_id {diff_id}'
        print(f'  layer {layer}: {os.path.getsize(path) / 1048576:.1f} MiB, sha256 matches the diff_id')
        out.write(path + '\n')
c = config['config']
print('  config sha256:' + config_digest, config['os'] + '/' + config['architecture'])
with open(config_out, 'w') as out:
    for key in ('Entrypoint', 'Cmd', 'WorkingDir', 'Env'):
        out.write(key + '=' + json.dumps(c.get(key)) + '\n')
PY
echo "  config:"
sed 's/^/    /' "$DIR/config.env"
ENTRYPOINT=$(sed -n 's/^Entrypoint=//p' "$DIR/config.env")
CMD=$(sed -n 's/^Cmd=//p' "$DIR/config.env")
WORKDIR=$(sed -n 's/^WorkingDir=//p' "$DIR/config.env" | python3 -c 'import json,sys; print(json.load(sys.stdin) or "/")')
mapfile -t ENV_VARS < <(sed -n 's/^Env=//p' "$DIR/config.env" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin) or []))')
mapfile -t ENTRY < <(echo "$ENTRYPOINT" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin) or []))')

[ "$ENTRYPOINT" = '["/usr/bin/tini", "--", "node", "/opt/hornbill/bin/hornbill.mjs"]' ] && pass "ENTRYPOINT $ENTRYPOINT" || fail "ENTRYPOINT $ENTRYPOINT"
[ "$CMD" = '["--help"]' ] && pass "CMD $CMD" || fail "CMD $CMD"
[ "$WORKDIR" = /opt/hornbill ] && pass "WORKDIR $WORKDIR" || fail "WORKDIR $WORKDIR"
printf '%s\n' "${ENV_VARS[@]}" | grep -qx 'NODE_ENV=production' && pass "ENV NODE_ENV=production" || fail "ENV has no NODE_ENV=production"

if command -v skopeo >/dev/null; then
  if out=$(skopeo inspect --config "docker-archive:$TARBALL" 2>&1); then pass "skopeo reads it as docker-archive:"; else fail "skopeo docker-archive: $out"; fi
  if [ -f "$DIR/archive/index.json" ]; then
    if out=$(skopeo inspect --raw "oci:$DIR/archive" 2>&1); then pass "skopeo reads it as an OCI layout"; else fail "skopeo oci: $out"; fi
  fi
else
  echo "  (skopeo not installed: the archive is not checked with it)"
fi

echo "== applying the layers"
while read -r layer; do
  tar -xf "$layer" -C "$ROOT" --numeric-owner --same-permissions
  # Whiteouts (a later layer deleting what an earlier one had).
  while IFS= read -r -d '' wh; do
    name=$(basename "$wh")
    if [ "$name" = .wh..wh..opq ]; then
      find "$(dirname "$wh")" -mindepth 1 -maxdepth 1 -newer "$layer" -prune -o -print0 | xargs -0r rm -rf
    else
      rm -rf "$(dirname "$wh")/${name#.wh.}"
    fi
    rm -f "$wh"
  done < <(find "$ROOT" -name '.wh.*' -print0)
done <"$DIR/layers"
du -sh "$ROOT" | sed 's/^/  unpacked: /'

# Runs a command in the image as a container would: the config's environment, its working
# folder, a new PID namespace (the first process is PID 1) with its own /proc.
in_image() {
  unshare --pid --fork --mount --propagation private -- /bin/sh -c '
    root=$1; workdir=$2; shift 2
    mount -t proc proc "$root/proc" && mount -t tmpfs tmpfs "$root/tmp" &&
      mount --rbind /dev "$root/dev" || exit 125
    exec chroot "$root" /usr/bin/env -i "$@"
  ' sh "$ROOT" "$WORKDIR" "${ENV_VARS[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$WORKDIR" "$@"
}
check() { # check "what" EXPECTED-REGEX command…
  local what=$1 expected=$2 out
  shift 2
  if out=$(in_image "$@" 2>&1) && grep -Eq -- "$expected" <<<"$out"; then
    pass "$what: $(grep -E -m1 -- "$expected" <<<"$out")"
  else
    fail "$what: $out"
  fi
}

echo "== running the image's programs (chroot $ROOT)"
check "ENTRYPOINT --help (tini as PID 1)" 'hornbill' "${ENTRY[@]}" --help
check "node --version" '^v(2[4-9]|[3-9][0-9])\.' node --version
check "tini --version" 'tini version' tini --version
check "iscsiadm --version" 'iscsiadm version' iscsiadm --version
check "mkfs.ext4 -V" 'mke2fs [0-9]' mkfs.ext4 -V
check "mkfs.xfs -V" 'mkfs.xfs version' mkfs.xfs -V
check "mount.nfs -V" 'mount.nfs: \(linux nfs-utils' mount.nfs -V
check "mount.nfs4 -V" 'mount.nfs4: \(linux nfs-utils' mount.nfs4 -V
check "blkid -V" 'blkid from util-linux' blkid -V
check "nsenter --version" 'nsenter from util-linux' nsenter --version
check "ganesha.nfsd -v (the RWX share manager's NFS server)" 'NFS-Ganesha Release' ganesha.nfsd -v
check "ganesha VFS backend" 'libfsalvfs.so' ls /usr/lib/x86_64-linux-gnu/ganesha/
check "update-ca-certificates bundle" 'ca-certificates.crt' ls /etc/ssl/certs/ca-certificates.crt
# The CRC32C that Hornbill uses: native, loaded by src/native.ts from build/Release, with
# the standard check values (CRC-32C of "123456789" is 0xe3069283) and equal to the portable one.
check "native CRC32C addon" '^native' node --input-type=module -e "
  import { checksumImplementation, crc32c } from '/opt/hornbill/src/native.ts';
  import { crc32c as portable } from '@node-rs/crc32';
  const data = new TextEncoder().encode('123456789');
  const big = new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24);
  if (!checksumImplementation.startsWith('native')) throw new Error('not native: ' + checksumImplementation);
  if (crc32c(data) !== 0xe3069283) throw new Error('wrong CRC32C: ' + crc32c(data).toString(16));
  if (crc32c(big) !== portable(big) >>> 0) throw new Error('native and portable CRC32C differ');
  console.log(checksumImplementation + ', crc32c(\"123456789\") = 0x' + crc32c(data).toString(16));
"

if [ "$FAILURES" = 0 ]; then
  echo "== image verified: $ARCHIVE"
else
  echo "== $FAILURES check(s) failed: $ARCHIVE"
  exit 1
fi
