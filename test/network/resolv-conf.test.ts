import { describe, expect, it } from 'vitest';
import { containerResolvConf, parseResolvConf } from '../../src/network/resolv-conf';

describe('resolv.conf', () => {
  it('reads nameservers (the first three), the last search or domain line, and every option', () => {
    const conf = parseResolvConf(
      [
        '# made by hand',
        'nameserver 10.0.0.53',
        'domain old.example',
        'nameserver 2001:db8::53 ; a comment',
        'search corp.example example.com',
        'options ndots:2 timeout:1',
        'nameserver 10.0.0.54',
        'nameserver 10.0.0.55',
        'options  rotate',
        'sortlist 10.0.0.0',
        '',
      ].join('\n'),
    );
    expect(conf).toEqual({
      nameservers: ['10.0.0.53', '2001:db8::53', '10.0.0.54'],
      search: ['corp.example', 'example.com'],
      options: ['ndots:2', 'timeout:1', 'rotate'],
    });
  });

  it('falls back to the local resolver when no nameserver is named, as libc does', () => {
    expect(parseResolvConf('')).toEqual({ nameservers: ['127.0.0.1'], search: [], options: [] });
  });

  it('gives a container the node’s resolver only, the host’s search domains, and ndots:0 over the host’s', () => {
    const host = parseResolvConf('nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2 edns0\n');
    expect(containerResolvConf(host, '127.0.0.11')).toBe('nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0 edns0\n');
    expect(containerResolvConf(parseResolvConf('nameserver 10.0.0.53\n'), '127.0.0.11')).toBe('nameserver 127.0.0.11\noptions ndots:0\n');
  });
});
