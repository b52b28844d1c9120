/**
 * deploy/Dockerfile and scripts/build-image.sh (the same image built without a Docker
 * engine) agree: the runtime and build packages, the app's files and folder, WORKDIR, ENV,
 * ENTRYPOINT, CMD, the Debian release and the Node major; and scripts/verify-image.sh
 * expects what they set. Reads the files only: no image is built.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (file: string) => fs.readFileSync(ROOT + file, 'utf8');

interface ImageSpec {
  base: string;
  runtimePackages: string[];
  buildPackages: string[];
  appDir: string;
  appFiles: string[];
  workdir: string;
  env: string[];
  entrypoint: string[];
  cmd: string[];
  npmCi: string;
}

/** Instructions of a Dockerfile: comments dropped, continuation lines joined. */
function instructions(text: string): { op: string; args: string }[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [op, ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

function aptPackages(run: string): string[] {
  const match = /apt-get install\s+([^&;]*)/.exec(run);
  assert.ok(match, `no apt-get install in: ${run}`);
  return match[1].split(/\s+/).filter((word) => word !== '' && !word.startsWith('-'));
}

export function dockerfileSpec(text: string): ImageSpec {
  const all = instructions(text);
  const froms = all.flatMap((instruction, index) => (instruction.op === 'FROM' ? [index] : []));
  assert.equal(froms.length, 2, 'a build stage and a runtime stage');
  const build = all.slice(froms[0], froms[1]);
  const runtime = all.slice(froms[1]);
  const runs = (stage: typeof all) => stage.filter((i) => i.op === 'RUN').map((i) => i.args);
  const one = (stage: typeof all, op: string) => {
    const found = stage.filter((i) => i.op === op);
    assert.equal(found.length, 1, `one ${op} in the stage`);
    return found[0].args;
  };
  const buildApt = runs(build).filter((run) => run.includes('apt-get install'));
  const runtimeApt = runs(runtime).filter((run) => run.includes('apt-get install'));
  assert.equal(buildApt.length, 1);
  assert.equal(runtimeApt.length, 1);
  const appFiles = build
    .filter((i) => i.op === 'COPY' && !i.args.startsWith('--'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  const fromBuild = one(runtime, 'COPY').split(/\s+/);
  assert.equal(fromBuild[0], '--from=build');
  assert.equal(fromBuild[1], one(build, 'WORKDIR'), 'the runtime copies the build stage’s WORKDIR');
  const npmCi = runs(build).find((run) => run.startsWith('npm ci'));
  assert.ok(npmCi, 'the build stage runs npm ci');
  return {
    base: runtime[0].args.split(/\s+/)[0],
    runtimePackages: aptPackages(runtimeApt[0]),
    buildPackages: aptPackages(buildApt[0]),
    appDir: fromBuild[2],
    appFiles,
    workdir: one(runtime, 'WORKDIR'),
    env: runtime.filter((i) => i.op === 'ENV').flatMap((i) => i.args.split(/\s+/)),
    entrypoint: JSON.parse(one(runtime, 'ENTRYPOINT')),
    cmd: JSON.parse(one(runtime, 'CMD')),
    npmCi: npmCi.split(/\s+/).slice(0, 3).join(' '),
  };
}

/** `NAME=(a b c)`, `NAME=value` and `NAME='value'` assignments at the start of a line. */
function shellAssignments(text: string): Map<string, string | string[]> {
  const values = new Map<string, string | string[]>();
  for (const match of text.matchAll(/^([A-Z_]+)=(\(([^)]*)\)|'([^']*)'|"([^"]*)"|(\S*))$/gm)) {
    const [, name, , array, single, double, bare] = match;
    values.set(
      name,
      array !== undefined ? array.split(/\s+/).filter((w) => w !== '') : (single ?? double ?? bare),
    );
  }
  return values;
}

export function scriptSpec(text: string): ImageSpec & { suite: string } {
  const values = shellAssignments(text);
  const get = (name: string) => {
    assert.ok(values.has(name), `build-image.sh sets ${name}`);
    return values.get(name) as string & string[];
  };
  const npmCi = /"\$NPM_CLI" (ci --omit=dev)/.exec(text);
  assert.ok(npmCi, 'build-image.sh runs npm ci --omit=dev');
  return {
    base: '',
    suite: get('SUITE'),
    runtimePackages: get('RUNTIME_PACKAGES'),
    buildPackages: get('BUILD_PACKAGES'),
    appDir: get('APP_DIR'),
    appFiles: get('APP_FILES'),
    workdir: get('IMAGE_WORKDIR'),
    env: get('IMAGE_ENV'),
    entrypoint: JSON.parse(get('IMAGE_ENTRYPOINT')),
    cmd: JSON.parse(get('IMAGE_CMD')),
    npmCi: `npm ${npmCi[1]}`,
  };
}

/** The differences between the two, as messages (none when they agree). */
export function drift(dockerfile: string, script: string): string[] {
  const docker = dockerfileSpec(dockerfile);
  const built = scriptSpec(script);
  const problems: string[] = [];
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      problems.push(`${what}: Dockerfile ${JSON.stringify(a)}, build-image.sh ${JSON.stringify(b)}`);
    }
  };
  const sorted = (list: string[]) => [...list].sort();
  same('runtime packages', sorted(docker.runtimePackages), sorted(built.runtimePackages));
  same('build packages', sorted(docker.buildPackages), sorted(built.buildPackages));
  same('app folder', docker.appDir, built.appDir);
  same('app files', sorted(docker.appFiles.filter((f) => f !== './')), sorted(built.appFiles));
  same('WORKDIR', docker.workdir, built.workdir);
  same('ENV', docker.env, built.env);
  same('ENTRYPOINT', docker.entrypoint, built.entrypoint);
  same('CMD', docker.cmd, built.cmd);
  same('npm ci', docker.npmCi, built.npmCi);
  const base = /^node:(\d+)-([a-z]+)-slim$/.exec(docker.base);
  if (base === null) problems.push(`base image ${docker.base} is not node:<major>-<debian>-slim`);
  else same('Debian release', base[2], built.suite);
  return problems;
}

const dockerfile = read('deploy/Dockerfile');
const script = read('scripts/build-image.sh');

test('deploy/Dockerfile and scripts/build-image.sh build the same image', () => {
  assert.deepEqual(drift(dockerfile, script), []);
});

test('the values compared are the ones the issue asks for', () => {
  const spec = dockerfileSpec(dockerfile);
  for (const name of ['open-iscsi', 'nfs-common', 'e2fsprogs', 'xfsprogs', 'tini']) {
    assert.ok(spec.runtimePackages.includes(name), name);
  }
  assert.deepEqual(spec.entrypoint, ['/usr/bin/tini', '--', 'node', '/opt/hornbill/bin/hornbill.mjs']);
  assert.equal(spec.workdir, '/opt/hornbill');
  assert.ok(spec.appFiles.includes('native') && spec.appFiles.includes('binding.gyp'), 'the addon’s sources');
});

test('the Node.js in the image is the major the base image names and the lockfile pins', () => {
  const major = /^node:(\d+)-/.exec(dockerfileSpec(dockerfile).base)?.[1];
  const lock = JSON.parse(read('package-lock.json'));
  const pinned: string = lock.packages['node_modules/node'].version;
  assert.equal(pinned.split('.')[0], major, `the lockfile's node ${pinned}, the Dockerfile's node:${major}`);
  assert.match(script, /"node_modules\/node"\]\["version"\]/, 'build-image.sh takes Node from the lockfile');
});

test('scripts/verify-image.sh expects the ENTRYPOINT, CMD, WORKDIR and ENV the Dockerfile sets', () => {
  const verify = read('scripts/verify-image.sh');
  const spec = dockerfileSpec(dockerfile);
  const json = (value: unknown) => JSON.stringify(value).replaceAll('","', '", "');
  assert.ok(verify.includes(`[ "$ENTRYPOINT" = '${json(spec.entrypoint)}' ]`), 'ENTRYPOINT');
  assert.ok(verify.includes(`[ "$CMD" = '${json(spec.cmd)}' ]`), 'CMD');
  assert.ok(verify.includes(`[ "$WORKDIR" = ${spec.workdir} ]`), 'WORKDIR');
  for (const variable of spec.env) assert.ok(verify.includes(`grep -qx '${variable}'`), variable);
});

test('a drift is found: each compared value, changed on one side, is reported', () => {
  const mutations: [string, string, RegExp][] = [
    ['xfsprogs util-linux', 'util-linux', /^runtime packages/],
    ['python3 make g++', 'python3 make', /^build packages/],
    ['WORKDIR /opt/hornbill\nCOPY --from', 'WORKDIR /srv\nCOPY --from', /^WORKDIR/],
    ['"/opt/hornbill/bin/hornbill.mjs"]', '"/opt/hornbill/bin/other.mjs"]', /^ENTRYPOINT/],
    ['CMD ["--help"]', 'CMD ["up"]', /^CMD/],
    ['ENV NODE_ENV=production', 'ENV NODE_ENV=development', /^ENV/],
    ['COPY proto proto\n', '', /^app files/],
    [
      'node:24-bookworm-slim\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends \\\n',
      'node:24-trixie-slim\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends \\\n',
      /^Debian release/,
    ],
  ];
  for (const [from, to, expected] of mutations) {
    assert.ok(dockerfile.includes(from), `the Dockerfile has ${JSON.stringify(from)}`);
    const problems = drift(dockerfile.replace(from, to), script);
    assert.ok(
      problems.some((problem) => expected.test(problem)),
      `${JSON.stringify(from)} → ${JSON.stringify(to)}: ${problems.join('; ')}`,
    );
  }
  const scriptWithout = script.replace(/^RUNTIME_PACKAGES=\((.*) tini\)$/m, 'RUNTIME_PACKAGES=($1)');
  assert.notEqual(scriptWithout, script);
  assert.ok(drift(dockerfile, scriptWithout).some((problem) => problem.startsWith('runtime packages')));
});
