import { describe, expect, it } from 'vitest';
import { vipRuleset, type VipService } from '../../src/network/vip';

const web: VipService = {
  vip: '10.0.0.2',
  protocol: 'tcp',
  port: 80,
  endpoints: [
    { ip: '10.0.0.5', port: 80 },
    { ip: '10.0.1.6', port: 8080 },
  ],
};

describe('vipRuleset', () => {
  it('replaces the table whole: endpoint chains, service chains with numgen, then the map and hooks', () => {
    expect(vipRuleset('shoal', [web, { vip: '10.0.0.3', protocol: 'udp', port: 53, endpoints: [] }])).toBe(
      [
        'table ip shoal {}',
        'delete table ip shoal',
        'table ip shoal {',
        '  chain endpoint-10.0.0.2-tcp-80-10.0.0.5-80 {',
        '    meta l4proto tcp dnat to 10.0.0.5:80',
        '  }',
        '  chain endpoint-10.0.0.2-tcp-80-10.0.1.6-8080 {',
        '    meta l4proto tcp dnat to 10.0.1.6:8080',
        '  }',
        '  chain service-10.0.0.2-tcp-80 {',
        '    numgen random mod 2 vmap { 0 : goto endpoint-10.0.0.2-tcp-80-10.0.0.5-80, 1 : goto endpoint-10.0.0.2-tcp-80-10.0.1.6-8080 }',
        '  }',
        '  map service-ips {',
        '    type ipv4_addr . inet_proto . inet_service : verdict',
        '    elements = { 10.0.0.2 . tcp . 80 : goto service-10.0.0.2-tcp-80 }',
        '  }',
        '  set no-endpoints {',
        '    type ipv4_addr . inet_proto . inet_service',
        '    elements = { 10.0.0.3 . udp . 53 }',
        '  }',
        '  map service-ips-any-port {',
        '    type ipv4_addr . inet_proto : verdict',
        '  }',
        '  set no-endpoints-any-port {',
        '    type ipv4_addr . inet_proto',
        '  }',
        '  chain services {',
        '    ip daddr . meta l4proto . th dport vmap @service-ips',
        '    ip daddr . meta l4proto vmap @service-ips-any-port',
        '  }',
        '  chain nat-prerouting {',
        '    type nat hook prerouting priority -100; policy accept;',
        '    jump services',
        '  }',
        '  chain nat-output {',
        '    type nat hook output priority -100; policy accept;',
        '    jump services',
        '  }',
        '  chain filter-forward {',
        '    type filter hook forward priority 0; policy accept;',
        '    ip daddr . meta l4proto . th dport @no-endpoints reject',
        '    ip daddr . meta l4proto @no-endpoints-any-port reject',
        '  }',
        '  chain filter-output {',
        '    type filter hook output priority 0; policy accept;',
        '    ip daddr . meta l4proto . th dport @no-endpoints reject',
        '    ip daddr . meta l4proto @no-endpoints-any-port reject',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('leaves the map and the set without elements when there are no services', () => {
    const text = vipRuleset('shoal', []);
    expect(text).not.toContain('elements');
    expect(text).not.toContain('chain service-');
    expect(text).toContain('map service-ips {');
  });

  it('gives the same service on two ports or protocols chains of their own', () => {
    const text = vipRuleset('shoal', [web, { ...web, port: 443 }, { ...web, protocol: 'udp' }]);
    expect(text).toContain('chain service-10.0.0.2-tcp-443 {');
    expect(text).toContain('chain endpoint-10.0.0.2-udp-80-10.0.0.5-80 {\n    meta l4proto udp dnat to 10.0.0.5:80');
    expect(text).toContain('10.0.0.2 . tcp . 80 : goto service-10.0.0.2-tcp-80, 10.0.0.2 . tcp . 443 : goto service-10.0.0.2-tcp-443, 10.0.0.2 . udp . 80');
  });

  it('balances every port of a service on port 0, keeping the port', () => {
    const all: VipService = { vip: '10.0.0.2', protocol: 'tcp', port: 0, endpoints: [{ ip: '10.0.0.5', port: 0 }] };
    const text = vipRuleset('shoal', [all, { ...all, protocol: 'udp', endpoints: [] }]);
    expect(text).toContain('  chain endpoint-10.0.0.2-tcp-0-10.0.0.5-0 {\n    meta l4proto tcp dnat to 10.0.0.5\n  }');
    expect(text).toContain('  map service-ips-any-port {\n    type ipv4_addr . inet_proto : verdict\n    elements = { 10.0.0.2 . tcp : goto service-10.0.0.2-tcp-0 }');
    expect(text).toContain('  set no-endpoints-any-port {\n    type ipv4_addr . inet_proto\n    elements = { 10.0.0.2 . udp }');
    expect(text).toContain('  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n  }');
  });

  it.each([
    ['an endpoint port on a service on every port', 'shoal', [{ ...web, port: 0 }], 'endpoint port 80 of 10.0.0.2, a service on every port, must be 0'],
    ['a table name nft would not parse', 'shoal;flush ruleset', [web], 'table "shoal;flush ruleset" must be'],
    ['a bad VIP', 'shoal', [{ ...web, vip: '10.0.0.256' }], 'vip "10.0.0.256" is not an IPv4 address'],
    ['a bad endpoint', 'shoal', [{ ...web, endpoints: [{ ip: '10.0.0.5; flush', port: 80 }] }], 'endpoint "10.0.0.5; flush" is not an IPv4 address'],
    ['a port out of range', 'shoal', [{ ...web, port: 65536 }], 'port 65536 must be 1–65535'],
    ['an endpoint port of 0', 'shoal', [{ ...web, endpoints: [{ ip: '10.0.0.5', port: 0 }] }], 'port 0 must be 1–65535'],
    ['an unknown protocol', 'shoal', [{ ...web, protocol: 'sctp' as 'tcp' }], 'protocol "sctp" must be tcp or udp'],
    ['a service twice', 'shoal', [web, web], 'service 10.0.0.2:80/tcp is listed twice'],
  ])('refuses %s', (_what, table, services, message) => {
    expect(() => vipRuleset(table, services as VipService[])).toThrow(message);
  });
});
