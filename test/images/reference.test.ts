import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ShoalError } from '../../src/common/errors';
import { normalizeTag, parseReference } from '../../src/images/reference';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['shoal-test', { registry: 'docker.io', repository: 'library/shoal-test', name: 'shoal-test', tag: 'latest' }],
    ['shoal-test:v1.2_x', { name: 'shoal-test', tag: 'v1.2_x' }],
    ['docker.io/library/busybox:1', { registry: 'docker.io', repository: 'library/busybox', name: 'busybox', tag: '1' }],
    ['index.docker.io/team/app', { registry: 'docker.io', repository: 'team/app', name: 'team/app', tag: 'latest' }],
    ['team/app', { registry: 'docker.io', repository: 'team/app', name: 'team/app' }],
    ['localhost:5000/app', { registry: 'localhost:5000', repository: 'app', name: 'localhost:5000/app', tag: 'latest' }],
    ['registry.example.com/a/b/c:t', { registry: 'registry.example.com', repository: 'a/b/c', name: 'registry.example.com/a/b/c', tag: 't' }],
    [`app@${D}`, { name: 'app', tag: undefined, digest: D }],
    [`app:t@${D}`, { name: 'app', tag: 't', digest: D }],
  ])('%s', (ref, want) => {
    expect(parseReference(ref)).toMatchObject(want);
  });

  it.each([
    ['', /empty/],
    ['Upper', /lowercase/],
    ['app:', /tag ""/],
    ['app:-bad', /tag "-bad"/],
    ['app@md5:abc', /only sha256/],
    ['app@sha256:abc', /64 lowercase hex/],
    ['a//b', /"" is not a valid name component/],
    ['a--b_', /not a valid name component/],
    ['bad_host.com:x/app', /not a valid registry host/],
    [`r.io/${'a'.repeat(260)}`, /longer than 255/],
  ])('refuses %j', (ref, message) => {
    let err: unknown;
    try {
      parseReference(ref);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShoalError);
    expect((err as ShoalError).code).toBe(status.INVALID_ARGUMENT);
    expect((err as ShoalError).message).toMatch(message);
  });
});

describe('normalizeTag', () => {
  it('gives the canonical name:tag', () => {
    expect(normalizeTag('shoal-test')).toBe('shoal-test:latest');
    expect(normalizeTag('docker.io/library/busybox')).toBe('busybox:latest');
    expect(normalizeTag('localhost:5000/app:1')).toBe('localhost:5000/app:1');
    expect(() => normalizeTag(`app@${D}`)).toThrow(/digest reference/);
  });
});
