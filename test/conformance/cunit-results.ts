/**
 * Reads the CUnit output of libiscsi's iscsi-test-cu into per-test results, the way
 * ../shared/peers/run-baselines.sh does: a test CUnit counts as passed but that printed
 * "[SKIPPED]" is a skip.
 */

export type Outcome = 'PASS' | 'FAIL' | 'SKIP';

export interface TestResult {
  /** e.g. SCSI.Read10.BeyondEol or iSCSI.iSCSITMF.AbortTaskSimpleAsync */
  name: string;
  family: string;
  outcome: Outcome;
  /** Lines CUnit printed for the test (assert failures, [FAILED] and [SKIPPED] notes). */
  detail: string[];
}

export function parseCunitOutput(output: string, prefix: 'SCSI' | 'iSCSI'): TestResult[] {
  const results: TestResult[] = [];
  let suite = '';
  let current: TestResult | null = null;
  let skipped = false;
  const settle = (line: string): void => {
    if (current === null || current.outcome !== ('PENDING' as Outcome)) return;
    if (/\[SKIPPED\]/.test(line)) skipped = true;
    if (/^passed/.test(line)) current.outcome = skipped ? 'SKIP' : 'PASS';
    else if (/^FAILED/.test(line)) current.outcome = 'FAIL';
  };
  for (const raw of output.split('\n')) {
    const suiteMatch = /^Suite: (\S+)/.exec(raw);
    if (suiteMatch !== null) {
      suite = suiteMatch[1];
      continue;
    }
    const testMatch = /^ {2}Test: (\S+) \.\.\.(.*)$/.exec(raw);
    if (testMatch !== null) {
      current = {
        name: `${prefix}.${suite}.${testMatch[1]}`,
        family: `${prefix}.${suite}`,
        outcome: 'PENDING' as Outcome,
        detail: [],
      };
      results.push(current);
      skipped = false;
      const rest = testMatch[2].trim();
      if (rest !== '') current.detail.push(rest);
      settle(rest);
      continue;
    }
    if (current === null) continue;
    const line = raw.trim();
    if (line === '' || /^Run Summary/.test(line)) continue;
    if (current.outcome === ('PENDING' as Outcome) || /^\d+\. /.test(line)) current.detail.push(line);
    settle(line);
  }
  // A test cut off (crash, timeout) counts as failed.
  for (const result of results) if (result.outcome === ('PENDING' as Outcome)) result.outcome = 'FAIL';
  return results;
}

export interface FamilyCounts {
  family: string;
  pass: number;
  fail: number;
  skip: number;
}

export function countByFamily(results: TestResult[]): FamilyCounts[] {
  const byFamily = new Map<string, FamilyCounts>();
  for (const result of results) {
    let counts = byFamily.get(result.family);
    if (counts === undefined) {
      counts = { family: result.family, pass: 0, fail: 0, skip: 0 };
      byFamily.set(result.family, counts);
    }
    if (result.outcome === 'PASS') counts.pass++;
    else if (result.outcome === 'FAIL') counts.fail++;
    else counts.skip++;
  }
  return [...byFamily.values()];
}

/**
 * The tests docs/conformance.md accounts for: rows of its "Known failures and skips" table,
 * `| <test name> | FAIL or SKIP | reason | ... |`.
 */
export function documentedOutcomes(markdown: string): Map<string, { outcome: Outcome; reason: string }> {
  const documented = new Map<string, { outcome: Outcome; reason: string }>();
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`?((?:SCSI|iSCSI)\.[\w.*-]+)`?\s*\|\s*(FAIL|SKIP)\s*\|\s*([^|]+)\|/.exec(line);
    if (match !== null) documented.set(match[1], { outcome: match[2] as Outcome, reason: match[3].trim() });
  }
  return documented;
}

/** Whether a documented name (which may end in `*`) covers a test name. */
export function covers(pattern: string, name: string): boolean {
  if (!pattern.endsWith('*')) return pattern === name;
  return name.startsWith(pattern.slice(0, -1));
}
