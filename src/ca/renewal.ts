/**
 * How long to wait before renewing a certificate: until a random point between 50% and 80% of its
 * lifetime (swarmkit's window), so a cluster's nodes do not all ask the CA at once. 0 when that point
 * has already passed.
 */
export function renewalDelayMs(notBefore: Date, notAfter: Date, random = Math.random, now = Date.now()): number {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const renewAt = notBefore.getTime() + lifetime * (0.5 + 0.3 * random());
  return Math.max(0, Math.round(renewAt - now));
}
