/**
 * Status conditions, written the way controller-runtime's meta.SetStatusCondition writes
 * them: one entry per type; lastTransitionTime changes only when the status changes.
 */
import { type Condition, type ConditionStatus, formatTimestamp } from './api.ts';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
}

/**
 * The conditions with `input` set: a new entry, or the existing one updated in place (its
 * lastTransitionTime kept unless status changes). Returns a new array; order is kept.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  nowMilliseconds: number = Date.now(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === input.type);
  const previous = index < 0 ? undefined : list[index];
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    lastTransitionTime:
      previous !== undefined && previous.status === input.status
        ? previous.lastTransitionTime
        : formatTimestamp(nowMilliseconds),
  };
  if (input.observedGeneration !== undefined) next.observedGeneration = input.observedGeneration;
  if (index < 0) list.push(next);
  else list[index] = next;
  return list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((condition) => condition.type !== type);
}
