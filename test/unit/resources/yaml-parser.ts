/**
 * Reads YAML with a parser nobody here wrote, to check the emitter: PyYAML (Debian package
 * python3-yaml) when python3 has it. `undefined` when it is missing (tests skip, naming it).
 */
import { spawnSync } from 'node:child_process';

const SCRIPT = 'import json,sys,yaml; print(json.dumps([yaml.safe_load(d) for d in json.load(sys.stdin)]))';

export function yamlParserMissing(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import yaml'], { encoding: 'utf8' });
  if (probe.error === undefined && probe.status === 0) return undefined;
  const reason = 'PyYAML is needed to read the YAML back (Debian package python3-yaml)';
  if (process.env.HORNBILL_REQUIRE_TOOLS === '1') throw new Error(reason);
  return reason;
}

/** Parses each YAML document with PyYAML and returns the JSON values. */
export function parseYamlDocuments(documents: string[]): unknown[] {
  const result = spawnSync('python3', ['-c', SCRIPT], {
    input: JSON.stringify(documents),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`PyYAML failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as unknown[];
}
