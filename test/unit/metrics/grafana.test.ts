import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { requireTool } from '../../helpers/tools.ts';

/**
 * deploy/grafana: the alert rules pass `promtool check rules`, the dashboard is valid JSON
 * with unique panel ids, and every metric either of them uses is one docs/metrics.md
 * documents (whose exporters the metrics tests check).
 */

const documented = new Set(
  [...fs.readFileSync('docs/metrics.md', 'utf8').matchAll(/`(hornbill_[a-z0-9_]+)`/g)].map(
    (match) => match[1],
  ),
);

function metricNames(expression: string): string[] {
  return [...expression.matchAll(/\b(hornbill_[a-z0-9_]+)/g)].map((match) =>
    match[1].replace(/_(bucket|sum|count)$/, ''),
  );
}

test('the alert rules pass promtool and use documented metrics', (t) => {
  const rules = fs.readFileSync('deploy/grafana/alerts.yaml', 'utf8');
  const expressions = [...rules.matchAll(/^\s*expr:\s*(.+)$/gm)].map((match) => match[1]);
  assert.ok(expressions.length >= 6);
  for (const name of expressions.flatMap(metricNames))
    assert.ok(documented.has(name), `${name} is not documented`);
  for (const alert of ['Degraded', 'Faulted', 'SpaceHigh', 'NodeDown', 'DiskSpaceHigh', 'RebuildStalled'])
    assert.match(rules, new RegExp(`alert: Hornbill\\w*${alert}`));
  if (!requireTool(t, 'promtool', 'prometheus')) return;
  const checked = spawnSync('promtool', ['check', 'rules', 'deploy/grafana/alerts.yaml'], {
    encoding: 'utf8',
  });
  assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}`);
});

test('the dashboard is valid and its queries use documented metrics', () => {
  const dashboard = JSON.parse(fs.readFileSync('deploy/grafana/dashboard.json', 'utf8'));
  const panels: { id: number; targets?: { expr: string }[] }[] = dashboard.panels;
  assert.equal(new Set(panels.map((panel) => panel.id)).size, panels.length, 'panel ids are unique');
  const expressions = panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
  assert.ok(expressions.length > 10);
  for (const name of expressions.flatMap(metricNames))
    assert.ok(documented.has(name), `${name} is not documented`);
});
