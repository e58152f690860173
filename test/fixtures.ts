import type { Service__Output } from '../src/gen/shoal/v1/Service';
import type { Task__Output } from '../src/gen/shoal/v1/Task';
import type { TaskState__Output } from '../src/gen/shoal/v1/TaskState';
import { validateServiceSpec } from '../src/manager/validate';

/** A stored-looking replicated service for pure-logic tests. */
export function service(replicas: number, restart: { condition?: string; max_attempts?: number; delay_ms?: number; window_ms?: number } = {}): Service__Output {
  const spec = validateServiceSpec({
    name: 'web',
    mode: { replicated: { replicas } },
    task_template: {
      container: { image: 'shoal-test:latest' },
      restart_policy: { condition: 'any', delay_ms: 1, ...restart },
    },
  });
  return { id: 'svc1', version: 1, spec, spec_version: 1, created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', errors: [], update_status: null, previous_spec: null, previous_spec_version: 0, virtual_ips: [] };
}

let seq = 0;

export function task(
  svc: Service__Output,
  slot: number,
  state: TaskState__Output,
  extra: Partial<Task__Output> = {},
): Task__Output {
  seq++;
  return {
    id: `t${String(seq).padStart(4, '0')}`,
    version: 1,
    service_id: svc.id,
    service_name: svc.spec!.name,
    slot,
    node_id: 'node1',
    spec_version: svc.spec_version,
    spec: svc.spec!.task_template,
    desired_state: 'RUNNING',
    status: { state, timestamp: '', message: '', err: '', container: null, health: '' },
    created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    start_after: '',
    schedule_error: '',
    restart_times: [],
    endpoint: null,
    ...extra,
  };
}
