/**
 * Metric families computed at scrape time, registered on a prom-client Registry. Hornbill's
 * state (instances, replica modes, I/O counters in typed arrays) already lives in the
 * processes; a family here reads it when Prometheus scrapes instead of mirroring every
 * change into prom-client objects, so the hot path never touches prom-client.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

export type Labels = Record<string, string>;

export interface Sample {
  labels: Labels;
  value: number;
  /** For histogram parts: `<name>_bucket`, `<name>_sum`, `<name>_count`. */
  metricName?: string;
}

export type FamilyType = 'gauge' | 'counter' | 'histogram';

/** Registers a family whose samples `collect` computes at each scrape. */
export function registerFamily(
  registry: Registry,
  name: string,
  help: string,
  type: FamilyType,
  collect: () => Sample[] | Promise<Sample[]>,
): void {
  const family = {
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      return { name, help, type, aggregator: 'sum', values: await collect() };
    },
    reset() {},
  };
  // prom-client accepts any object with name and get() (its own metrics are such objects).
  registry.registerMetric(family as unknown as Parameters<Registry['registerMetric']>[0]);
}

/** One sample per possible state: 1 for the current one, 0 for the others (Longhorn's style). */
export function stateSamples(
  labels: Labels,
  stateLabel: string,
  states: readonly string[],
  current: string,
): Sample[] {
  return states.map((state) => ({
    labels: { ...labels, [stateLabel]: state },
    value: state === current ? 1 : 0,
  }));
}

/** The samples of a histogram from cumulative bucket counts (the last is +Inf). */
export function histogramSamples(
  name: string,
  labels: Labels,
  bounds: readonly number[],
  cumulative: readonly number[],
  sum: number,
): Sample[] {
  const samples: Sample[] = bounds.map((bound, index) => ({
    metricName: `${name}_bucket`,
    labels: { ...labels, le: String(bound) },
    value: cumulative[index],
  }));
  const count = cumulative[cumulative.length - 1];
  samples.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
  samples.push({ metricName: `${name}_sum`, labels, value: sum });
  samples.push({ metricName: `${name}_count`, labels, value: count });
  return samples;
}

/**
 * prom-client's default process and Node.js metrics under `prefix`, less the three gauges
 * whose names end in `_total` (nodejs_active_handles/requests/resources_total), which
 * `promtool check metrics` rejects: a `_total` suffix is for counters.
 */
export function registerProcessMetrics(
  registry: Registry,
  prefix: string,
  labels: Record<string, string>,
): void {
  collectDefaultMetrics({ register: registry, prefix, labels });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(`${prefix}${name}`);
}

/** A scrape reads every family within milliseconds: a result is reused for one second. */
const SCRAPE_WINDOW_MS = 1000;

export function onePerScrape<T>(load: () => Promise<T>): () => Promise<T> {
  let loadedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<T> | undefined;
  return () => {
    const now = performance.now();
    if (pending === undefined || now - loadedAt > SCRAPE_WINDOW_MS) {
      loadedAt = now;
      pending = load();
      // A failed list is not reused: the next family (or scrape) asks again.
      pending.catch(() => {
        pending = undefined;
      });
    }
    return pending;
  };
}
