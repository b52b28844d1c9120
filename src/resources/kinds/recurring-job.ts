/** RecurringJob: snapshots, backups and clean-ups on a cron schedule, for volumes in its groups. */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { cronProblem } from '../cron.ts';
import { type FieldError, Schema } from '../schema.ts';
import { AGE_COLUMN, type KindDefinition, labelMapSchema, statusBaseProperties } from './common.ts';

export const RECURRING_JOB_TASKS = [
  'snapshot',
  'snapshot-force-create',
  'snapshot-cleanup',
  'snapshot-delete',
  'backup',
  'backup-force-create',
  'filesystem-trim',
] as const;
/** Tasks whose results are kept, `retain` at a time. */
const RETAINING_TASKS: readonly string[] = [
  'snapshot',
  'snapshot-force-create',
  'snapshot-delete',
  'backup',
  'backup-force-create',
];
export const MAX_RECURRING_JOB_RETAIN = 100;

export interface RecurringJobSpec {
  task: (typeof RECURRING_JOB_TASKS)[number];
  cron: string;
  /** How many snapshots or backups of this job a volume keeps. */
  retain: number;
  /** Volumes processed at once. */
  concurrency: number;
  groups: string[];
  labels: Record<string, string>;
}

export type RecurringJobSpecInput = WithOptional<
  RecurringJobSpec,
  'retain' | 'concurrency' | 'groups' | 'labels'
>;

export interface RecurringJobStatus extends StatusBase {
  executionCount?: number;
  lastScheduledAt?: string;
}

export type RecurringJob = Resource<'RecurringJob', RecurringJobSpec, RecurringJobStatus>;

export const recurringJobDefinition: KindDefinition = {
  kind: 'RecurringJob',
  plural: 'recurringjobs',
  singular: 'recurringjob',
  shortNames: ['hbrj'],
  description: 'Snapshots, backups and clean-ups on a schedule.',
  nameRule: 'dns-subdomain',
  spec: Schema.object(
    {
      task: Schema.enumeration(RECURRING_JOB_TASKS),
      cron: Schema.string({
        minLength: 1,
        maxLength: 256,
        description: 'Five-field cron expression or @descriptor.',
      }),
      retain: Schema.integer({ minimum: 0, maximum: MAX_RECURRING_JOB_RETAIN, default: 1 }),
      concurrency: Schema.integer({ minimum: 1, maximum: 100, default: 1 }),
      groups: Schema.array(Schema.string({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' }), {
        maxItems: 64,
        'x-kubernetes-list-type': 'set',
        default: [],
      }),
      labels: labelMapSchema('Labels put on the snapshots and backups the job makes.'),
    },
    { required: ['task', 'cron'] },
  ),
  status: Schema.object({
    ...statusBaseProperties,
    executionCount: Schema.integer({ minimum: 0 }),
    lastScheduledAt: Schema.timestamp('When the job last started.'),
  }),
  printerColumns: [
    { name: 'Task', type: 'string', jsonPath: '.spec.task' },
    { name: 'Cron', type: 'string', jsonPath: '.spec.cron' },
    { name: 'Retain', type: 'integer', jsonPath: '.spec.retain' },
    { name: 'Concurrency', type: 'integer', jsonPath: '.spec.concurrency' },
    { name: 'Groups', type: 'string', jsonPath: '.spec.groups' },
    AGE_COLUMN,
  ],
  validate(object) {
    const job = object.spec as RecurringJobSpec;
    const errors: FieldError[] = [];
    const problem = cronProblem(job.cron);
    if (problem !== undefined) errors.push({ field: 'spec.cron', reason: problem });
    if (RETAINING_TASKS.includes(job.task) && job.retain < 1) {
      errors.push({ field: 'spec.retain', reason: `must be at least 1 for task ${job.task}` });
    }
    return errors;
  },
};
