import { type Command, InvalidArgumentError } from 'commander';
import type { ServiceSpec__Output } from '../../gen/shoal/v1/ServiceSpec';
import type { UpdateConfig__Output } from '../../gen/shoal/v1/UpdateConfig';
import { duration, integer } from './service-flags';

const oneOf = (flag: string, values: string[]) => (v: string) => {
  if (!values.includes(v)) throw new InvalidArgumentError(`${flag} must be ${values.slice(0, -1).join(', ')} or ${values.at(-1)}, got "${v}"`);
  return v;
};

const ratio = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!/^\s*\d*\.?\d+\s*$/.test(v) || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${flag} must be a number from 0 to 1, got "${v}"`);
  return n;
};

const KINDS = [
  { prefix: 'update', field: 'update_config', actions: ['pause', 'continue', 'rollback'] },
  // Rolling back a rollback would loop between two specs.
  { prefix: 'rollback', field: 'rollback_config', actions: ['pause', 'continue'] },
] as const;

/** Adds --update-* and --rollback-* (parallelism, delay, failure action, monitor, ratio, order), as Docker's. */
export function rolloutOptions(cmd: Command): Command {
  for (const { prefix, actions } of KINDS) {
    const what = prefix === 'update' ? 'an update' : 'a rollback';
    cmd
      .option(`--${prefix}-parallelism <n>`, `tasks replaced at a time in ${what} (0: all; default 1)`, integer(`--${prefix}-parallelism`))
      .option(`--${prefix}-delay <duration>`, `wait between batches of ${what} (default 0s)`, duration(`--${prefix}-delay`))
      .option(`--${prefix}-failure-action <action>`, `on failure of ${what}: ${actions.join(' or ')} (default pause)`, oneOf(`--${prefix}-failure-action`, [...actions]))
      .option(`--${prefix}-monitor <duration>`, `how long a new task must run to count as updated (default 5s)`, duration(`--${prefix}-monitor`))
      .option(`--${prefix}-max-failure-ratio <ratio>`, `fraction of failed tasks tolerated, 0 to 1 (default 0)`, ratio(`--${prefix}-max-failure-ratio`))
      .option(`--${prefix}-order <order>`, 'stop-first or start-first (default stop-first)', oneOf(`--${prefix}-order`, ['stop-first', 'start-first']));
  }
  return cmd;
}

/** Each flag's name after its --update-/--rollback- prefix (as commander camel-cases it) and its config field. */
const FIELDS = [
  ['Parallelism', 'parallelism'],
  ['Delay', 'delay_ms'],
  ['FailureAction', 'failure_action'],
  ['Monitor', 'monitor_ms'],
  ['MaxFailureRatio', 'max_failure_ratio'],
  ['Order', 'order'],
] as const;

/** Sets what the flags name on the spec's update and rollback configs; the daemon fills the rest. */
export function applyRolloutFlags(spec: ServiceSpec__Output, opts: Record<string, unknown>): void {
  for (const { prefix, field } of KINDS) {
    const given = FIELDS.filter(([flag]) => opts[`${prefix}${flag}`] !== undefined);
    if (!given.length) continue;
    // Unset fields stay absent, so a new service's config gets the daemon's defaults for them.
    const c: Record<string, unknown> = { ...spec[field] };
    for (const [flag, key] of given) c[key] = opts[`${prefix}${flag}`];
    spec[field] = c as unknown as UpdateConfig__Output;
  }
}
