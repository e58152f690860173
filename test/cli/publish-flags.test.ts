import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { applyPublishFlags, parsePublish, parsePublishedPort, portsText, publishOptions, publishUpdateOptions } from '../../src/cli/commands/publish-flags';
import { blankSpec } from '../../src/cli/commands/service-flags';

const port = (published_port: number, target_port: number, protocol = 'tcp', publish_mode = 'ingress') => ({ protocol, target_port, published_port, publish_mode });

/** The options commander gives a command with these flags, or the error it exits with. */
function parsed(options: (cmd: Command) => Command, args: string[]): Record<string, unknown> {
  const cmd = options(new Command('x')).exitOverride().configureOutput({ writeErr: () => {} });
  cmd.parse(args, { from: 'user' });
  return cmd.opts();
}

describe('--publish', () => {
  it('takes Docker’s short syntax: PUBLISHED:TARGET, a protocol, or the target alone (the manager picks the port)', () => {
    expect(parsePublish('--publish', '8080:80')).toEqual(port(8080, 80));
    expect(parsePublish('--publish', '8080:80/udp')).toEqual(port(8080, 80, 'udp'));
    expect(parsePublish('--publish', '80')).toEqual(port(0, 80));
    expect(parsePublish('--publish', '53/udp')).toEqual(port(0, 53, 'udp'));
  });

  it('takes Docker’s long syntax, in any order, with ingress and tcp as defaults', () => {
    expect(parsePublish('-p', 'mode=host,published=9090,target=80,protocol=udp')).toEqual(port(9090, 80, 'udp', 'host'));
    expect(parsePublish('-p', 'target=80,published=8080')).toEqual(port(8080, 80));
    expect(parsePublish('-p', 'mode=ingress,target=80')).toEqual(port(0, 80));
  });

  it('refuses every malformed value, naming the flag and what is wrong', () => {
    const refusals: [string, string][] = [
      ['', '--publish must be PUBLISHED:TARGET[/PROTOCOL], TARGET[/PROTOCOL] or mode=ingress|host'],
      ['8080:', '--publish: the target port must be a number from 1 to 65535, got ""'],
      [':80', '--publish: the published port must be a number from 1 to 65535, got ""'],
      ['0:80', '--publish: the published port must be a number from 1 to 65535, got "0"'],
      ['8080:0', '--publish: the target port must be a number from 1 to 65535, got "0"'],
      ['70000:80', '--publish: the published port must be a number from 1 to 65535, got "70000"'],
      ['8080:http', '--publish: the target port must be a number from 1 to 65535, got "http"'],
      ['8080:80/sctp', '--publish: the protocol must be tcp or udp, got "sctp"'],
      ['80/', '--publish: the protocol must be tcp or udp, got ""'],
      ['127.0.0.1:8080:80', '--publish must be PUBLISHED:TARGET[/PROTOCOL]'],
      ['8080-8081:80-81', '--publish: port ranges are not supported, got "8080-8081:80-81"'],
      ['published=8080', '--publish: target=PORT is required in "published=8080"'],
      ['target=80,mode=routing', '--publish: mode must be ingress or host, got "routing"'],
      ['target=80,protocol=icmp', '--publish: the protocol must be tcp or udp, got "icmp"'],
      ['target=80,published=x', '--publish: the published port must be a number from 0 to 65535, got "x"'],
      ['target=80,target=81', '--publish: target is given twice in "target=80,target=81"'],
      ['target=80,host=1', '--publish: "host=1" is not one of mode=…, published=…, target=…, protocol=…'],
      ['target=80,', '--publish: "" is not one of mode=…'],
      ['target=99999', '--publish: the target port must be a number from 1 to 65535, got "99999"'],
    ];
    for (const [value, message] of refusals) expect(() => parsePublish('--publish', value), value).toThrow(message);
  });

  it('is repeatable, and comes with --endpoint-mode vip|dnsrr', () => {
    expect(parsed(publishOptions, ['-p', '8080:80', '--publish', 'mode=host,published=9090,target=90', '--endpoint-mode', 'dnsrr'])).toEqual({
      publish: [port(8080, 80), port(9090, 90, 'tcp', 'host')],
      endpointMode: 'dnsrr',
    });
    expect(() => parsed(publishOptions, ['--endpoint-mode', 'rr'])).toThrow('--endpoint-mode must be vip or dnsrr, got "rr"');
    expect(() => parsed(publishOptions, ['-p', '8080:80', '-p', 'x'])).toThrow("option '-p, --publish <port>' argument 'x' is invalid");
  });
});

describe('--publish-add and --publish-rm', () => {
  it('parse a published port, 8080 or 8080/udp, for removal', () => {
    expect(parsePublishedPort('--publish-rm', '8080')).toEqual({ port: 8080, protocol: 'tcp' });
    expect(parsePublishedPort('--publish-rm', ' 53/udp')).toEqual({ port: 53, protocol: 'udp' });
    expect(() => parsePublishedPort('--publish-rm', '8080:80')).toThrow('--publish-rm: the published port must be a number from 1 to 65535, got "8080:80"');
    expect(() => parsePublishedPort('--publish-rm', '8080/icmp')).toThrow('--publish-rm: the protocol must be tcp or udp, got "icmp"');
    expect(parsed(publishUpdateOptions, ['--publish-rm', '8080', '--publish-add', '9090:90'])).toEqual({ publishRm: [{ port: 8080, protocol: 'tcp' }], publishAdd: [port(9090, 90)] });
    expect(() => parsed(publishUpdateOptions, ['--publish-add', 'x'])).toThrow('--publish-add: the target port must be a number from 1 to 65535, got "x"');
  });

  it('remove first, then add, an added port replacing the one of its published port and protocol', () => {
    const spec = blankSpec();
    spec.name = 'web';
    spec.endpoint_spec = { mode: 'vip', ports: [port(8080, 80), port(8080, 80, 'udp'), port(9090, 90)] };
    applyPublishFlags(spec, { publishRm: [{ port: 8080, protocol: 'udp' }], publishAdd: [port(9090, 99), port(0, 70)] });
    expect(spec.endpoint_spec).toEqual({ mode: 'vip', ports: [port(8080, 80), port(9090, 99), port(0, 70)] });
    applyPublishFlags(spec, { endpointMode: 'dnsrr' });
    expect(spec.endpoint_spec.mode).toBe('dnsrr');
  });

  it('refuse to remove a port the service does not publish, naming it', () => {
    const spec = blankSpec();
    spec.name = 'web';
    spec.endpoint_spec = { mode: 'vip', ports: [port(8080, 80)] };
    expect(() => applyPublishFlags(spec, { publishRm: [{ port: 8080, protocol: 'udp' }] })).toThrow('--publish-rm: service web does not publish 8080/udp');
  });

  it('set the ports of a new service, the mode left to the daemon’s default unless given', () => {
    const spec = blankSpec();
    applyPublishFlags(spec, { publish: [port(8080, 80)] });
    expect(spec.endpoint_spec).toEqual({ mode: '', ports: [port(8080, 80)] });
  });
});

describe('the PORTS column', () => {
  it('shows each port as Docker does, host mode alike', () => {
    expect(portsText([port(8080, 80), port(9090, 80, 'udp', 'host')])).toBe('*:8080->80/tcp, *:9090->80/udp');
    expect(portsText([])).toBe('');
  });
});
