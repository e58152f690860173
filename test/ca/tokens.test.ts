import { status } from '@grpc/grpc-js';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';

// Wrapped so the tests can see that token comparison goes through the constant-time primitive.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

import { timingSafeEqual } from 'node:crypto';
import { caDigest, createRootCA, type KeyPair } from '../../src/ca/certificates';
import { caMatchesToken, newJoinToken, parseJoinToken, tokenMatches } from '../../src/ca/tokens';
import { thrown } from './thrown';

let ca: KeyPair;
let otherCa: KeyPair;
beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createRootCA('shoal-root-ca'), createRootCA('shoal-root-ca')]);
});

const DIGEST = '0'.repeat(50);
const SECRET = 'a'.repeat(25);

describe('newJoinToken', () => {
  it('writes SWMTKN-1-<50 base-36 digest>-<25 base-36 secret>', () => {
    const token = newJoinToken(ca.certPem);
    expect(token).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  });

  it('pins the CA: the digest part reads back as caDigest', () => {
    const token = newJoinToken(ca.certPem);
    expect(parseJoinToken(token).digest).toBe(caDigest(ca.certPem));
    expect(BigInt(`0x${caDigest(ca.certPem)}`).toString(36).padStart(50, '0')).toBe(token.split('-')[2]);
  });

  it('draws a new secret each time', () => {
    const secrets = new Set(Array.from({ length: 50 }, () => parseJoinToken(newJoinToken(ca.certPem)).secret));
    expect(secrets.size).toBe(50);
  });
});

describe('parseJoinToken', () => {
  it('splits a token into the hex CA digest and the secret', () => {
    expect(parseJoinToken(`SWMTKN-1-${DIGEST}-${SECRET}`)).toEqual({ digest: '0'.repeat(64), secret: SECRET });
    expect(parseJoinToken(`SWMTKN-1-${'0'.repeat(49)}z-${SECRET}`).digest).toBe(`${'0'.repeat(62)}23`);
  });

  it.each([
    ['', 'invalid join token: it must start with "SWMTKN-1-" (print one with `shoal join-token worker` on a manager)'],
    [`SWMTKN-2-${DIGEST}-${SECRET}`, 'invalid join token: it must start with "SWMTKN-1-" (print one with `shoal join-token worker` on a manager)'],
    [`swmtkn-1-${DIGEST}-${SECRET}`, 'invalid join token: it must start with "SWMTKN-1-" (print one with `shoal join-token worker` on a manager)'],
    [`SWMTKN-1-${DIGEST}`, 'invalid join token: it must have the form SWMTKN-1-<CA digest>-<secret>'],
    [`SWMTKN-1-${DIGEST}-${SECRET}-x`, 'invalid join token: it must have the form SWMTKN-1-<CA digest>-<secret>'],
    [`SWMTKN-1-${DIGEST.slice(1)}-${SECRET}`, 'invalid join token: the CA digest must be 50 characters long, not 49'],
    [`SWMTKN-1-${DIGEST.slice(1)}A-${SECRET}`, 'invalid join token: the CA digest may hold only the characters 0-9 and a-z'],
    [`SWMTKN-1-${DIGEST}-${SECRET}0`, 'invalid join token: the secret must be 25 characters long, not 26'],
    [`SWMTKN-1-${DIGEST}-${SECRET.slice(1)}_`, 'invalid join token: the secret may hold only the characters 0-9 and a-z'],
    [`SWMTKN-1-${DIGEST}-${SECRET.slice(1)}\n`, 'invalid join token: the secret may hold only the characters 0-9 and a-z'],
    [`SWMTKN-1-${'z'.repeat(50)}-${SECRET}`, 'invalid join token: the CA digest is larger than a SHA-256 digest can be'],
  ])('refuses %j with one sentence', (token, message) => {
    const err = thrown(() => parseJoinToken(token));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.message).toBe(message);
  });

  it('never repeats the secret in its error', () => {
    const secret = 'q'.repeat(24) + 'Q';
    expect(() => parseJoinToken(`SWMTKN-1-${DIGEST}-${secret}`)).toThrow(/^((?!qqqq).)*$/);
  });
});

describe('tokenMatches', () => {
  // A block body: a function returned from beforeEach would be run as its cleanup.
  beforeEach(() => {
    vi.mocked(timingSafeEqual).mockClear();
  });

  it('accepts the same token through the constant-time comparison', () => {
    const token = newJoinToken(ca.certPem);
    expect(tokenMatches(token, `${token}`)).toBe(true);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
  });

  it('refuses a token that differs in the last character of its secret', () => {
    const token = newJoinToken(ca.certPem);
    const last = token.at(-1) === 'a' ? 'b' : 'a';
    expect(tokenMatches(token.slice(0, -1) + last, token)).toBe(false);
    expect(timingSafeEqual).toHaveBeenCalledTimes(1);
  });

  it('refuses the other token of the same cluster, and tokens of another length', () => {
    const worker = newJoinToken(ca.certPem);
    const manager = newJoinToken(ca.certPem);
    expect(tokenMatches(worker, manager)).toBe(false);
    expect(tokenMatches(`${worker}0`, worker)).toBe(false);
    expect(tokenMatches('', worker)).toBe(false);
  });
});

describe('caMatchesToken', () => {
  it('is true only for the CA the token was made for', () => {
    const token = newJoinToken(ca.certPem);
    expect(caMatchesToken(ca.certPem, token)).toBe(true);
    expect(caMatchesToken(otherCa.certPem, token)).toBe(false);
  });

  it('refuses a malformed token with its sentence', () => {
    expect(() => caMatchesToken(ca.certPem, 'SWMTKN-1-x')).toThrow('invalid join token: it must have the form SWMTKN-1-<CA digest>-<secret>');
  });
});
