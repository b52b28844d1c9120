import fs from 'node:fs';
import path from 'node:path';

const RESULTS = path.join(import.meta.dirname, 'RESULTS.md');

/**
 * Replaces (or appends) one benchmark's section of bench/RESULTS.md, between
 * `<!-- results:KEY -->` markers, so that each benchmark rewrites only its own figures.
 */
export function writeResultsSection(key: string, title: string, body: string): void {
  const start = `<!-- results:${key} -->`;
  const end = `<!-- /results:${key} -->`;
  const section = `${start}\n## ${title}\n\n${body}\n${end}`;
  let text = fs.existsSync(RESULTS)
    ? fs.readFileSync(RESULTS, 'utf8')
    : "# Benchmark results\n\nFigures measured on this project's 2-core machine; every comparison is a ratio against a peer measured in the same run.\n\n";
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  text =
    from >= 0 && to > from
      ? text.slice(0, from) + section + text.slice(to + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(RESULTS, text);
}
