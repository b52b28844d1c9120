/**
 * A small deterministic YAML emitter for JSON values (the CRD manifests). Block style;
 * keys in insertion order; a string is written plain only when it cannot be read back as
 * anything else (no indicator characters, not a number, boolean or null in YAML 1.1 or
 * 1.2), otherwise double-quoted with JSON's escapes, which YAML's double-quoted style shares.
 */
import { isPlainObject } from './json.ts';

const PLAIN = /^[A-Za-z][A-Za-z0-9 ._/()-]*$/;
const RESERVED = /^(y|yes|n|no|true|false|on|off|null)$/i;

/**
 * JSON's double-quoted form, with every character outside printable ASCII escaped: YAML
 * reads some that JSON leaves raw (U+0085, U+2028, U+2029) as line breaks.
 */
function quoted(text: string): string {
  let out = '';
  for (const character of JSON.stringify(text)) {
    const code = character.codePointAt(0) as number;
    if (code >= 0x20 && code < 0x7f) out += character;
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\U${code.toString(16).padStart(8, '0')}`;
  }
  return out;
}

function quoteIfNeeded(text: string): string {
  return PLAIN.test(text) && !text.endsWith(' ') && !RESERVED.test(text) ? text : quoted(text);
}

/** Integers as digits; other numbers with a '.' before any exponent (YAML 1.1 needs one). */
function numberText(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`YAML: ${value} is not a JSON number`);
  const text = String(value);
  return /e/.test(text) && !text.includes('.') ? text.replace('e', '.0e') : text;
}

/** The inline form of a scalar or an empty collection; undefined for a non-empty collection. */
function inline(value: unknown): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return quoteIfNeeded(value);
    case 'boolean':
      return String(value);
    case 'number':
      return numberText(value);
    case 'object':
      if (Array.isArray(value)) return value.length === 0 ? '[]' : undefined;
      if (isPlainObject(value)) return Object.keys(value).length === 0 ? '{}' : undefined;
      break;
  }
  throw new TypeError(`YAML: cannot write ${typeof value}`);
}

function block(value: unknown, indent: number, lines: string[]): void {
  const pad = ' '.repeat(indent);
  if (Array.isArray(value)) {
    for (const item of value) {
      const text = inline(item);
      if (text !== undefined) {
        lines.push(`${pad}- ${text}`);
      } else if (Array.isArray(item)) {
        lines.push(`${pad}-`);
        block(item, indent + 2, lines);
      } else {
        const start = lines.length;
        block(item, indent + 2, lines);
        lines[start] = `${pad}- ${lines[start].slice(indent + 2)}`;
      }
    }
    return;
  }
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (item === undefined) continue;
    const text = inline(item);
    if (text !== undefined) {
      lines.push(`${pad}${quoteIfNeeded(key)}: ${text}`);
    } else {
      lines.push(`${pad}${quoteIfNeeded(key)}:`);
      block(item, indent + 2, lines);
    }
  }
}

/** One YAML document (without `---`), ending in a newline. */
export function toYaml(value: unknown): string {
  const text = inline(value);
  if (text !== undefined) return `${text}\n`;
  const lines: string[] = [];
  block(value, 0, lines);
  return `${lines.join('\n')}\n`;
}
