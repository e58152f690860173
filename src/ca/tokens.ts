import { randomBytes, timingSafeEqual } from 'node:crypto';
import { invalidArgument } from '../common/errors';
import { caDigest } from './certificates';

/**
 * Join tokens, as Docker Swarm writes them: `SWMTKN-1-<digest>-<secret>`.
 * - digest: the SHA-256 of the root CA's DER as a base-36 number, zero-padded to 50 characters;
 *   the joiner checks the CA it fetched anonymously against it before it sends anything.
 * - secret: 128 random bits in base 36, zero-padded to 25 characters.
 * Base 36 keeps tokens short and free of characters a shell or a copy-paste would mangle.
 */
const PREFIX = 'SWMTKN-1-';
const DIGEST_CHARS = 50;
const SECRET_CHARS = 25;
const SECRET_BYTES = 16;
const BASE36 = /^[0-9a-z]+$/;
const MAX_DIGEST = 1n << 256n;

function toBase36(hex: string, width: number): string {
  return BigInt(`0x${hex}`).toString(36).padStart(width, '0');
}

function fromBase36(text: string): bigint {
  let n = 0n;
  for (const ch of text) n = n * 36n + BigInt(parseInt(ch, 36));
  return n;
}

export function newJoinToken(caCertPem: string): string {
  const digest = toBase36(caDigest(caCertPem), DIGEST_CHARS);
  const secret = toBase36(randomBytes(SECRET_BYTES).toString('hex'), SECRET_CHARS);
  return `${PREFIX}${digest}-${secret}`;
}

function checkPart(text: string, width: number, what: string): void {
  if (text.length !== width) {
    throw invalidArgument(`invalid join token: the ${what} must be ${width} characters long, not ${text.length}`);
  }
  if (!BASE36.test(text)) {
    throw invalidArgument(`invalid join token: the ${what} may hold only the characters 0-9 and a-z`);
  }
}

/**
 * Splits a token into the CA digest (lower-case hex, as caDigest returns it) and the secret.
 * Error messages never repeat the token: it is a credential.
 */
export function parseJoinToken(token: string): { digest: string; secret: string } {
  if (!token.startsWith(PREFIX)) {
    throw invalidArgument(`invalid join token: it must start with "${PREFIX}" (print one with \`shoal join-token worker\` on a manager)`);
  }
  const parts = token.slice(PREFIX.length).split('-');
  if (parts.length !== 2) {
    throw invalidArgument(`invalid join token: it must have the form ${PREFIX}<CA digest>-<secret>`);
  }
  const [digest36, secret] = parts as [string, string];
  checkPart(digest36, DIGEST_CHARS, 'CA digest');
  checkPart(secret, SECRET_CHARS, 'secret');
  const digest = fromBase36(digest36);
  if (digest >= MAX_DIGEST) throw invalidArgument('invalid join token: the CA digest is larger than a SHA-256 digest can be');
  return { digest: digest.toString(16).padStart(64, '0'), secret };
}

/** Whether the presented token is the expected one, compared in constant time. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  // Well-formed tokens all have one length, so refusing on length reveals nothing about the secret.
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Whether caCertPem is the CA the token pins. */
export function caMatchesToken(caCertPem: string, token: string): boolean {
  return caDigest(caCertPem) === parseJoinToken(token).digest;
}
