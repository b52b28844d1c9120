/**
 * Label selectors with Kubernetes semantics, as text (`app=web,tier!=db,zone in (a,b),
 * env notin (dev),release,!canary`) or as a LabelSelector object (matchLabels and
 * matchExpressions). Both forms become a list of requirements that all must hold.
 */
import { HornbillError } from '../errors.ts';
import { labelValueProblem, qualifiedNameProblem } from './names.ts';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelRequirement {
  key: string;
  operator: SelectorOperator;
  /** One or more values for In and NotIn; empty for Exists and DoesNotExist. */
  values: string[];
}

/** The metav1.LabelSelector shape. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: SelectorOperator; values?: string[] }[];
}

export type LabelSelectorInput = string | LabelSelector;

/** A selector longer than this is refused (it arrives from API clients). */
export const MAX_SELECTOR_LENGTH = 4096;

function invalid(selector: string, reason: string): HornbillError {
  return new HornbillError('INVALID_ARGUMENT', `label selector ${JSON.stringify(selector)}: ${reason}`, {
    selector,
    reason,
  });
}

function checkRequirement(requirement: LabelRequirement, selector: string): LabelRequirement {
  const keyProblem = qualifiedNameProblem(requirement.key);
  if (keyProblem !== undefined)
    throw invalid(selector, `key ${JSON.stringify(requirement.key)} ${keyProblem}`);
  const needsValues = requirement.operator === 'In' || requirement.operator === 'NotIn';
  if (needsValues && requirement.values.length === 0) {
    throw invalid(selector, `${requirement.operator} on ${requirement.key} needs at least one value`);
  }
  if (!needsValues && requirement.values.length > 0) {
    throw invalid(selector, `${requirement.operator} on ${requirement.key} takes no values`);
  }
  for (const value of requirement.values) {
    const valueProblem = labelValueProblem(value);
    if (valueProblem !== undefined) throw invalid(selector, `value ${JSON.stringify(value)} ${valueProblem}`);
  }
  return requirement;
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(text: string, selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < text.length; index++) {
    const character = text[index];
    if (character === '(') depth++;
    else if (character === ')') {
      depth--;
      if (depth < 0) throw invalid(selector, 'unbalanced parentheses');
    } else if (character === ',' && depth === 0) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  if (depth !== 0) throw invalid(selector, 'unbalanced parentheses');
  parts.push(text.slice(start));
  return parts;
}

const SET_REQUIREMENT = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/;
const EQUALITY_REQUIREMENT = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/;

function parseOne(part: string, selector: string): LabelRequirement {
  const text = part.trim();
  if (text === '') throw invalid(selector, 'empty requirement');
  const set = SET_REQUIREMENT.exec(text);
  if (set !== null) {
    const values = set[3].trim() === '' ? [] : set[3].split(',').map((value) => value.trim());
    return checkRequirement({ key: set[1], operator: set[2] === 'in' ? 'In' : 'NotIn', values }, selector);
  }
  const equality = EQUALITY_REQUIREMENT.exec(text);
  if (equality !== null) {
    const operator = equality[2] === '!=' ? 'NotIn' : 'In';
    return checkRequirement({ key: equality[1], operator, values: [equality[3]] }, selector);
  }
  if (text.startsWith('!')) {
    return checkRequirement({ key: text.slice(1).trim(), operator: 'DoesNotExist', values: [] }, selector);
  }
  if (/^\S+$/.test(text)) return checkRequirement({ key: text, operator: 'Exists', values: [] }, selector);
  throw invalid(selector, `cannot parse ${JSON.stringify(text)}`);
}

/** Parses selector text; the empty string selects everything. */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.length > MAX_SELECTOR_LENGTH) throw invalid(selector.slice(0, 64), 'too long');
  if (selector.trim() === '') return [];
  return splitTopLevel(selector, selector).map((part) => parseOne(part, selector));
}

/** Either form of selector as requirements. */
export function toLabelRequirements(selector: LabelSelectorInput | undefined): LabelRequirement[] {
  if (selector === undefined) return [];
  if (typeof selector === 'string') return parseLabelSelector(selector);
  const text = JSON.stringify(selector);
  const requirements: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    requirements.push(checkRequirement({ key, operator: 'In', values: [value] }, text));
  }
  for (const expression of selector.matchExpressions ?? []) {
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(expression.operator)) {
      throw invalid(text, `unknown operator ${JSON.stringify(expression.operator)}`);
    }
    requirements.push(
      checkRequirement(
        { key: expression.key, operator: expression.operator, values: [...(expression.values ?? [])] },
        text,
      ),
    );
  }
  return requirements;
}

/** Selector text for requirements (what the Kubernetes API takes as `labelSelector`). */
export function formatLabelSelector(requirements: LabelRequirement[]): string {
  return requirements
    .map(({ key, operator, values }) => {
      if (operator === 'Exists') return key;
      if (operator === 'DoesNotExist') return `!${key}`;
      if (values.length === 1) return `${key}${operator === 'In' ? '=' : '!='}${values[0]}`;
      return `${key} ${operator === 'In' ? 'in' : 'notin'} (${values.join(',')})`;
    })
    .join(',');
}

/** True when every requirement holds for `labels` (NotIn and != also hold when the label is absent). */
export function matchesLabels(
  requirements: LabelRequirement[],
  labels: Record<string, string> | undefined,
): boolean {
  for (const { key, operator, values } of requirements) {
    const value = labels?.[key];
    switch (operator) {
      case 'In':
        if (value === undefined || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (value !== undefined && values.includes(value)) return false;
        break;
      case 'Exists':
        if (value === undefined) return false;
        break;
      case 'DoesNotExist':
        if (value !== undefined) return false;
        break;
    }
  }
  return true;
}
