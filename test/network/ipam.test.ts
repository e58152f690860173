import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/common/errors';
import { FIRST_VNI, Ipam, validateSubnet } from '../../src/network/ipam';
import { thrown } from '../ca/thrown';

/** Every address the network hands out until it refuses, in order. */
function drain(ipam: Ipam, networkId: string): string[] {
  const out: string[] = [];
  for (;;) {
    try {
      out.push(ipam.allocateAddress(networkId));
    } catch (e) {
      if (hasCode(e, status.RESOURCE_EXHAUSTED)) return out;
      throw e;
    }
  }
}

describe('subnets', () => {
  it('carves /24s from the default pool in order, skipping ones in use', () => {
    const ipam = new Ipam();
    expect(ipam.allocateNetwork('a')).toEqual({ subnet: '10.0.0.0/24', gateway: '10.0.0.1', vni: FIRST_VNI });
    expect(ipam.allocateNetwork('b', '10.0.1.0/24').subnet).toBe('10.0.1.0/24');
    expect(ipam.allocateNetwork('c').subnet).toBe('10.0.2.0/24');
    ipam.releaseNetwork('a');
    expect(ipam.allocateNetwork('d').subnet).toBe('10.0.0.0/24');
  });

  it('skips past a large user subnet and reserved ranges, staying aligned', () => {
    const ipam = new Ipam({ reserved: ['10.0.0.0/23', '10.0.3.128/25'] });
    ipam.allocateNetwork('big', '10.0.4.0/22');
    expect(ipam.allocateNetwork('a').subnet).toBe('10.0.2.0/24');
    expect(ipam.allocateNetwork('b').subnet).toBe('10.0.8.0/24');
  });

  it('takes a user subnet that lies outside the pool', () => {
    expect(new Ipam().allocateNetwork('a', '192.168.50.0/26')).toMatchObject({ subnet: '192.168.50.0/26', gateway: '192.168.50.1' });
  });

  it('refuses a subnet that overlaps another network, naming it, and stores nothing', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('backend', '10.20.0.0/24');
    for (const subnet of ['10.20.0.0/24', '10.20.0.128/25', '10.0.0.0/8']) {
      const err = thrown(() => ipam.allocateNetwork('x', subnet));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.message).toBe(`subnet ${subnet} overlaps 10.20.0.0/24 of network backend`);
    }
    expect(ipam.allocateNetwork('x', '10.20.1.0/24').vni).toBe(FIRST_VNI + 1);
  });

  it.each([
    ['10.0.0.0', 'is not an IPv4 CIDR such as 10.20.0.0/24'],
    ['10.0.0.0/33', 'is not an IPv4 CIDR'],
    ['10.0.0.0/-1', 'is not an IPv4 CIDR'],
    ['10.0.256.0/24', 'is not an IPv4 CIDR'],
    ['10.0.01.0/24', 'is not an IPv4 CIDR'],
    ['10.0.0.0/24/1', 'is not an IPv4 CIDR'],
    ['backend', 'is not an IPv4 CIDR'],
    ['10.0.0.1/24', 'has host bits set; the network is 10.0.0.0/24'],
    ['10.0.0.4/31', 'is too small: a network needs a /30 or larger'],
    ['10.0.0.4/32', 'is too small'],
  ])('refuses the subnet %s', (subnet, rule) => {
    const ipam = new Ipam();
    const err = thrown(() => ipam.allocateNetwork('a', subnet));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.message).toContain(`subnet "${subnet}" ${rule}`);
    expect(() => validateSubnet(subnet)).toThrow(rule);
    expect(ipam.allocateNetwork('a').subnet).toBe('10.0.0.0/24');
  });

  it('says the pool is exhausted', () => {
    const ipam = new Ipam({ pool: '10.9.0.0/23' });
    ipam.allocateNetwork('a');
    ipam.allocateNetwork('b');
    const err = thrown(() => ipam.allocateNetwork('c'));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.message).toBe('the address pool 10.9.0.0/23 has no free /24 left; give the network a --subnet');
  });

  it('gives each network its own VNI from 4096 and reuses a released one', () => {
    const ipam = new Ipam();
    expect(['a', 'b', 'c'].map((id) => ipam.allocateNetwork(id).vni)).toEqual([4096, 4097, 4098]);
    ipam.releaseNetwork('b');
    expect(ipam.allocateNetwork('d').vni).toBe(4097);
  });
});

describe('addresses', () => {
  it('hands out every usable address once, skipping network, gateway and broadcast', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('n', '10.1.0.0/29');
    expect(drain(ipam, 'n')).toEqual(['10.1.0.2/29', '10.1.0.3/29', '10.1.0.4/29', '10.1.0.5/29', '10.1.0.6/29']);
    expect(thrown(() => ipam.allocateAddress('n')).message).toBe('network n (10.1.0.0/29) has no free address left');
  });

  it('a /30 holds exactly one address', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('n', '10.1.0.0/30');
    expect(drain(ipam, 'n')).toEqual(['10.1.0.2/30']);
  });

  it('reuses a released address only after the ones never used', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('n', '10.1.0.0/29');
    const [a, b] = [ipam.allocateAddress('n'), ipam.allocateAddress('n')];
    ipam.releaseAddress('n', a);
    expect(drain(ipam, 'n')).toEqual(['10.1.0.4/29', '10.1.0.5/29', '10.1.0.6/29', a]);
    ipam.releaseAddress('n', b);
    ipam.releaseAddress('n', b);
    expect(drain(ipam, 'n')).toEqual([b]);
  });

  it('keeps networks apart', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('a');
    ipam.allocateNetwork('b');
    expect([ipam.allocateAddress('a'), ipam.allocateAddress('b'), ipam.allocateAddress('a')]).toEqual(['10.0.0.2/24', '10.0.1.2/24', '10.0.0.3/24']);
  });

  it('restores allocations from the store and never hands them out again', () => {
    const ipam = new Ipam();
    expect(ipam.restoreNetwork('n', '10.1.0.0/29', 5000)).toEqual({ subnet: '10.1.0.0/29', gateway: '10.1.0.1', vni: 5000 });
    ipam.restoreAddress('n', '10.1.0.2/29');
    ipam.restoreAddress('n', '10.1.0.5/29');
    expect(drain(ipam, 'n')).toEqual(['10.1.0.3/29', '10.1.0.4/29', '10.1.0.6/29']);
    expect(thrown(() => ipam.restoreAddress('n', '10.1.0.5/29')).message).toBe('address 10.1.0.5/29 on network n is already in use');
  });

  it('refuses to restore what cannot be', () => {
    const ipam = new Ipam();
    ipam.restoreNetwork('n', '10.1.0.0/24', 5000);
    expect(thrown(() => ipam.restoreNetwork('m', '10.1.0.0/25', 5001)).code).toBe(status.FAILED_PRECONDITION);
    expect(thrown(() => ipam.restoreNetwork('m', '10.2.0.0/24', 5000)).message).toBe('vni 5000 of network m is already held by network n');
    expect(thrown(() => ipam.restoreNetwork('m', '10.2.0.0/24', 4095)).message).toBe('vni 4095 of network m is outside 4096–16777215');
    expect(thrown(() => ipam.restoreNetwork('n', '10.3.0.0/24', 5002)).code).toBe(status.ALREADY_EXISTS);
    expect(thrown(() => ipam.restoreAddress('n', '10.1.1.5/24')).message).toBe("address 10.1.1.5/24 is not in network n's subnet 10.1.0.0/24");
    expect(thrown(() => ipam.restoreAddress('n', '10.1.0.5/25')).code).toBe(status.INVALID_ARGUMENT);
    expect(thrown(() => ipam.restoreAddress('n', '10.1.0.1/24')).message).toBe('address 10.1.0.1/24 is the network, gateway or broadcast address of network n');
    expect(thrown(() => ipam.restoreAddress('n', '10.1.0.255/24')).code).toBe(status.INVALID_ARGUMENT);
    expect(thrown(() => ipam.restoreAddress('n', '10.1.0.5')).message).toBe('address "10.1.0.5" is not an IPv4 address with a prefix such as 10.20.0.5/24');
    expect(thrown(() => ipam.allocateAddress('gone')).code).toBe(status.NOT_FOUND);
  });

  it('forgets every address of a released network', () => {
    const ipam = new Ipam();
    ipam.allocateNetwork('n', '10.1.0.0/30');
    ipam.allocateAddress('n');
    ipam.releaseNetwork('n');
    ipam.releaseAddress('n', '10.1.0.2/30');
    ipam.allocateNetwork('m', '10.1.0.0/30');
    expect(ipam.allocateAddress('m')).toBe('10.1.0.2/30');
  });

  it('refuses a pool prefix that does not fit the pool', () => {
    expect(() => new Ipam({ pool: '10.0.0.0/16', poolPrefix: 12 })).toThrow('pool prefix /12 must lie between the pool');
    expect(() => new Ipam({ pool: '10.0.0.1/16' })).toThrow('pool "10.0.0.1/16" has host bits set');
  });
});
