import { describe, expect, it } from 'vitest';
import type { Node__Output } from '../../src/gen/shoal/v1/Node';
import { parseSnapshotStatus } from '../../src/manager/etcd/snapshot';
import { restoredNodesPlan } from '../../src/manager/restore';

const node = (id: string, role: 'manager' | 'worker', version = 7): Node__Output => ({
  id,
  version,
  spec: { role, availability: 'active', labels: {} },
  description: null,
  status: { state: 'NODE_READY', message: '', addr: '10.0.0.1', heartbeat_at: '' },
  manager_status: role === 'manager' ? { leader: false, reachability: 'reachable', addr: '10.0.0.1:2377', etcd_member_id: '1' } : null,
  created_at: '',
});

describe('restoredNodesPlan', () => {
  const self = { ...node('self', 'manager', 0), created_at: 'now' };

  it('removes every manager of the snapshot, keeps the workers, and adds this node', () => {
    const plan = restoredNodesPlan([node('m1', 'manager', 3), node('w1', 'worker'), node('m2', 'manager', 9), node('w2', 'worker')], self);
    expect(plan).toEqual([
      { type: 'delete', kind: 'nodes', id: 'm1', version: 3 },
      { type: 'delete', kind: 'nodes', id: 'm2', version: 9 },
      { type: 'create', kind: 'nodes', obj: self },
    ]);
  });

  it('replaces the node object of its own id when the snapshot has one (one write per key in a transaction)', () => {
    const plan = restoredNodesPlan([node('self', 'worker', 12), node('m1', 'manager', 3)], self);
    expect(plan).toEqual([
      { type: 'delete', kind: 'nodes', id: 'm1', version: 3 },
      { type: 'update', kind: 'nodes', obj: { ...self, version: 12 } },
    ]);
  });
});

describe('parseSnapshotStatus', () => {
  it('reads the revision and the key count of etcdctl snapshot status -w json', () => {
    expect(parseSnapshotStatus('{"hash":3025026772,"revision":11,"totalKey":14,"totalSize":20480}\n')).toEqual({ revision: 11, keys: 14 });
  });

  it('says what etcdctl printed when it is not what was expected', () => {
    expect(() => parseSnapshotStatus('Error: stat x: no such file')).toThrow('etcdctl snapshot status printed something that is not JSON: Error: stat x: no such file');
    expect(() => parseSnapshotStatus('{"hash":1}')).toThrow(/printed no revision and key count/);
  });
});
