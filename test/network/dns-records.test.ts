import { describe, expect, it } from 'vitest';
import type { Answer, Question } from 'dns-packet';
import { dnsTable, resolve, reverseName } from '../../src/network/dns-records';

// Two networks: front (api, web) and back (db, and api again). Container c1 is on front only,
// c2 on back then front, c3 on none the node knows.
const state = {
  attachments: [
    { id: 'c1', version: 1, networks: [{ network_id: 'front', address: '10.1.0.10/24' }] },
    {
      id: 'c2',
      version: 1,
      networks: [
        { network_id: 'back', address: '10.2.0.10/24' },
        { network_id: 'front', address: '10.1.0.11/24' },
      ],
    },
    { id: 'c3', version: 1, networks: [{ network_id: 'gone', address: '10.9.0.10/24' }] },
  ],
  services: [
    { service_id: 's-api', network_id: 'front', vip: '10.1.0.2', endpoints: ['10.1.0.3', '10.1.0.4'], service_name: 'api' },
    { service_id: 's-web', network_id: 'front', vip: '10.1.0.5', endpoints: [], service_name: 'web' },
    { service_id: 's-db', network_id: 'back', vip: '10.2.0.2', endpoints: ['10.2.0.3'], service_name: 'db' },
    { service_id: 's-api', network_id: 'back', vip: '10.2.0.4', endpoints: ['10.2.0.5'], service_name: 'api' },
    // Removed, its VIP not yet released: nothing to resolve it by.
    { service_id: 's-old', network_id: 'front', vip: '10.1.0.6', endpoints: [], service_name: '' },
  ],
  task_names: [
    { network_id: 'front', name: 'api.1.aaaa', ip: '10.1.0.3' },
    { network_id: 'front', name: 'api.2.bbbb', ip: '10.1.0.4' },
    { network_id: 'front', name: 'api.3.cccc', ip: '10.1.0.7' },
    { network_id: 'back', name: 'db.1.dddd', ip: '10.2.0.3' },
  ],
};
const table = dnsTable(state);
/** An answer's address or name (what every answer here carries). */
const data = (a: Answer) => ('data' in a ? a.data : undefined);
const ask = (taskId: string, name: string, type: Question['type'] = 'A') => resolve(table, taskId, { name, type, class: 'IN' });
const ips = (taskId: string, name: string) => ask(taskId, name)?.map(data);

describe('the names a container resolves', () => {
  it('answers a service name with its VIP on the container’s network', () => {
    expect(ask('c1', 'api')).toEqual([{ name: 'api', type: 'A', class: 'IN', ttl: 600, data: '10.1.0.2' }]);
    expect(ips('c1', 'web')).toEqual(['10.1.0.5']);
  });

  it('answers tasks.<service> with the addresses of its running tasks, and with none while none runs', () => {
    expect(ask('c1', 'tasks.api')).toEqual([
      { name: 'tasks.api', type: 'A', class: 'IN', ttl: 5, data: '10.1.0.3' },
      { name: 'tasks.api', type: 'A', class: 'IN', ttl: 5, data: '10.1.0.4' },
    ]);
    expect(ask('c1', 'tasks.web')).toEqual([]);
  });

  it('answers a task’s name with its address, whether or not it runs yet', () => {
    expect(ips('c1', 'api.3.cccc')).toEqual(['10.1.0.7']);
    expect(ips('c2', 'db.1.dddd')).toEqual(['10.2.0.3']);
  });

  it('does not answer names of networks the container is not on: they are for the host’s resolvers', () => {
    expect(ask('c1', 'db')).toBeUndefined();
    expect(ask('c1', 'tasks.db')).toBeUndefined();
    expect(ask('c1', 'db.1.dddd')).toBeUndefined();
    expect(ask('c3', 'api')).toBeUndefined();
    expect(ask('unknown-task', 'api')).toBeUndefined();
    expect(ask('c1', 'example.com')).toBeUndefined();
  });

  it('answers from the container’s first network first when two of them hold the name', () => {
    expect(ips('c2', 'api')).toEqual(['10.2.0.4']);
    expect(ips('c2', 'tasks.api')).toEqual(['10.2.0.5']);
    // And the second network's names too.
    expect(ips('c2', 'web')).toEqual(['10.1.0.5']);
  });

  it('matches names without regard to case or a final dot, answering under the name as asked', () => {
    expect(ask('c1', 'API.')).toEqual([{ name: 'API.', type: 'A', class: 'IN', ttl: 600, data: '10.1.0.2' }]);
    expect(ips('c1', 'Tasks.Api')).toEqual(['10.1.0.3', '10.1.0.4']);
  });

  it('has no record of another type for a name it holds: an empty answer, not a forward', () => {
    expect(ask('c1', 'api', 'AAAA')).toEqual([]);
    expect(ask('c1', 'api', 'MX')).toEqual([]);
    expect(resolve(table, 'c1', { name: 'api', type: 'A', class: 'CH' })).toBeUndefined();
  });

  it('names the service behind a VIP and the task behind an address (PTR), on the container’s networks only', () => {
    expect(reverseName('10.1.0.2')).toBe('2.0.1.10.in-addr.arpa');
    expect(ask('c1', reverseName('10.1.0.2'), 'PTR')).toEqual([{ name: '2.0.1.10.in-addr.arpa', type: 'PTR', class: 'IN', ttl: 600, data: 'api' }]);
    expect(ask('c1', reverseName('10.1.0.4'), 'PTR')?.map(data)).toEqual(['api.2.bbbb']);
    expect(ask('c1', reverseName('10.2.0.3'), 'PTR')).toBeUndefined();
    expect(ask('c1', reverseName('10.1.0.6'), 'PTR')).toBeUndefined();
    expect(ask('c1', reverseName('10.1.0.2'), 'A')).toEqual([]);
  });

  it('answers a dnsrr service’s name (no VIP) with its running tasks’ addresses, as tasks.<service>, and never a VIP', () => {
    const cache = { service_id: 's-cache', network_id: 'front', vip: '', endpoints: ['10.1.0.8', '10.1.0.9'], service_name: 'cache' };
    const rr = dnsTable({ ...state, services: [...state.services, cache] });
    const answer = (name: string, type: Question['type'] = 'A') => resolve(rr, 'c1', { name, type, class: 'IN' });
    expect(answer('cache')).toEqual([
      { name: 'cache', type: 'A', class: 'IN', ttl: 5, data: '10.1.0.8' },
      { name: 'cache', type: 'A', class: 'IN', ttl: 5, data: '10.1.0.9' },
    ]);
    expect(answer('tasks.cache')?.map(data)).toEqual(['10.1.0.8', '10.1.0.9']);
    expect(resolve(rr, 'c1', { name: reverseName(''), type: 'PTR', class: 'IN' })).toBeUndefined();
    // No task running: the name is there with no address, not forwarded.
    const idle = dnsTable({ ...state, services: [{ ...cache, endpoints: [] }] });
    expect(resolve(idle, 'c1', { name: 'cache', type: 'A', class: 'IN' })).toEqual([]);
  });

  it('knows nothing before the first state', () => {
    expect(resolve(dnsTable({ attachments: [], services: [], task_names: [] }), 'c1', { name: 'api', type: 'A' })).toBeUndefined();
  });
});
