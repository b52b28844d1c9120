import fs from 'node:fs';
import { HornbillError } from '../errors.ts';
import { applyJobOption, checkJob, cloneJobOptions, type JobOptions } from './options.ts';

/**
 * fio job files (`--profile FILE`): `[section]` headers, `key=value` or a bare `key`
 * (a boolean set to 1), comment lines starting with `#` or `;`, `${VAR}` replaced from
 * the environment. `[global]` sets defaults for the jobs after it (there may be several);
 * every other section is a job, named after the section.
 */

export interface RawSection {
  name: string;
  /** 1-based line of the section header (for messages). */
  line: number;
  options: [string, string][];
}

/** Largest job file read (a job file is a few hundred bytes; this bounds a mistaken path). */
const MAXIMUM_FILE_BYTES = 1024 * 1024;
const MAXIMUM_SECTIONS = 256;

export function parseJobFileText(text: string, fileName: string): RawSection[] {
  const sections: RawSection[] = [];
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    const where = `${fileName}:${index + 1}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header !== null) {
      if (sections.length >= MAXIMUM_SECTIONS)
        throw new HornbillError('BENCH_PROFILE_INVALID', `${where}: more than ${MAXIMUM_SECTIONS} sections`);
      sections.push({ name: header[1].trim(), line: index + 1, options: [] });
      continue;
    }
    if (sections.length === 0)
      throw new HornbillError('BENCH_PROFILE_INVALID', `${where}: an option before the first [section]`);
    if (/^include\s/.test(line))
      throw new HornbillError(
        'BENCH_PROFILE_INVALID',
        `${where}: include is not supported; inline the options`,
      );
    const equals = line.indexOf('=');
    const key = (equals < 0 ? line : line.slice(0, equals)).trim();
    const value = equals < 0 ? '1' : expandEnvironment(line.slice(equals + 1).trim(), where);
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key))
      throw new HornbillError('BENCH_PROFILE_INVALID', `${where}: ${JSON.stringify(line)} is not key=value`);
    sections[sections.length - 1].options.push([key, value]);
  }
  return sections;
}

function expandEnvironment(value: string, where: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const replacement = process.env[name];
    if (replacement === undefined)
      throw new HornbillError('BENCH_PROFILE_INVALID', `${where}: environment variable ${name} is not set`);
    return replacement;
  });
}

export function readJobFile(path: string): RawSection[] {
  let text: string;
  try {
    if (fs.statSync(path).size > MAXIMUM_FILE_BYTES)
      throw new HornbillError('BENCH_PROFILE_INVALID', `${path} is larger than a job file can be (1 MiB)`);
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof HornbillError) throw error;
    throw new HornbillError(
      'BENCH_PROFILE_INVALID',
      `cannot read job file ${path}: ${(error as Error).message}`,
    );
  }
  return parseJobFileText(text, path);
}

/** Writes sections back as a job file that fio and `hornbill bench --profile` read alike. */
export function formatJobFile(sections: RawSection[], comment = ''): string {
  const lines: string[] = comment === '' ? [] : comment.split('\n').map((line) => `# ${line}`);
  for (const section of sections) {
    if (lines.length > 0) lines.push('');
    lines.push(`[${section.name}]`);
    for (const [key, value] of section.options) lines.push(`${key}=${value}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface JobSet {
  jobs: JobOptions[];
  /** fio's top-level "global options": the command line's options and the file's [global]. */
  globalOptions: Record<string, string>;
}

/**
 * The jobs of a job file. `commandLine` holds options from the command line: like fio,
 * they are defaults that the file's [global] and sections override. `only` runs one
 * section (fio's --section).
 */
export function buildJobs(
  sections: RawSection[],
  fileName: string,
  commandLine: JobOptions,
  only: string | null = null,
): JobSet {
  const globalOptions: Record<string, string> = { ...commandLine.given };
  let defaults = cloneJobOptions(commandLine);
  const jobs: JobOptions[] = [];
  for (const section of sections) {
    const source = `${fileName}, section [${section.name}]`;
    if (section.name === 'global') {
      for (const [key, value] of section.options) {
        applyJobOption(defaults, key, value, source);
        globalOptions[key] = value;
      }
      continue;
    }
    const job = cloneJobOptions(defaults, section.name);
    job.given = {};
    for (const [key, value] of section.options) applyJobOption(job, key, value, source);
    checkJob(job, source);
    if (only === null || only === section.name) jobs.push(job);
    defaults = cloneJobOptions(defaults);
  }
  if (jobs.length === 0) {
    throw new HornbillError(
      'BENCH_PROFILE_INVALID',
      only === null ? `${fileName} describes no job (only [global])` : `${fileName} has no section [${only}]`,
    );
  }
  return { jobs, globalOptions };
}
