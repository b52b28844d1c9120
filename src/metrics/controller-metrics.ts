/**
 * The controllers' work as metrics on the manager's /metrics: reconciles per controller by
 * result, and the keys waiting in each controller's queue (docs/metrics.md).
 */
import type { Registry } from 'prom-client';
import type { ControllerQueueStatistics } from '../controllers/index.ts';
import { registerFamily } from './families.ts';

export function registerControllerMetrics(
  registry: Registry,
  statistics: () => readonly ControllerQueueStatistics[],
): void {
  registerFamily(
    registry,
    'hornbill_controller_reconciles_total',
    'Reconciles run by each controller since the manager started, by result (success, error).',
    'counter',
    () =>
      statistics().flatMap((queue) => [
        { labels: { controller: queue.controller, result: 'success' }, value: queue.succeeded },
        { labels: { controller: queue.controller, result: 'error' }, value: queue.failed },
      ]),
  );
  registerFamily(
    registry,
    'hornbill_controller_queue_depth',
    'Keys waiting in each controller’s work queue.',
    'gauge',
    () => statistics().map((queue) => ({ labels: { controller: queue.controller }, value: queue.depth })),
  );
}
