/**
 * Kubernetes name rules. Each check returns the reason a value is not valid, or undefined.
 * The patterns are RE2-compatible, so the CRD schemas can carry them unchanged.
 */

export const DNS_LABEL_MAX_LENGTH = 63;
export const DNS_SUBDOMAIN_MAX_LENGTH = 253;

/** RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** RFC 1123 subdomain: labels separated by '.'. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** The name part of a qualified name (label keys, finalizers) and label values. */
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

const dnsLabel = new RegExp(DNS_LABEL_PATTERN);
const dnsSubdomain = new RegExp(DNS_SUBDOMAIN_PATTERN);

export function dnsLabelProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.length > DNS_LABEL_MAX_LENGTH) return `must be at most ${DNS_LABEL_MAX_LENGTH} characters`;
  if (!dnsLabel.test(value)) {
    return "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit";
  }
  return undefined;
}

export function dnsSubdomainProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.length > DNS_SUBDOMAIN_MAX_LENGTH)
    return `must be at most ${DNS_SUBDOMAIN_MAX_LENGTH} characters`;
  if (!dnsSubdomain.test(value)) {
    return "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** `[prefix/]name`: prefix a DNS subdomain, name up to 63 of A-Z a-z 0-9 - _ . (label keys, finalizers). */
export function qualifiedNameProblem(value: string): string | undefined {
  const slash = value.indexOf('/');
  const name = slash < 0 ? value : value.slice(slash + 1);
  if (slash >= 0) {
    const prefixProblem = dnsSubdomainProblem(value.slice(0, slash));
    if (prefixProblem !== undefined) return `prefix ${prefixProblem}`;
  }
  if (name.length === 0) return 'name part must not be empty';
  if (name.length > 63) return 'name part must be at most 63 characters';
  if (!QUALIFIED_NAME_PART.test(name)) {
    return "name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** Label values: empty, or up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric. */
export function labelValueProblem(value: string): string | undefined {
  if (value.length === 0) return undefined;
  if (value.length > 63) return 'must be at most 63 characters';
  if (!QUALIFIED_NAME_PART.test(value)) {
    return "must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
  }
  return undefined;
}
