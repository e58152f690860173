/**
 * Bridged traffic between a node's containers and its VXLAN devices passes the host's iptables
 * FORWARD chain when bridge netfilter is on, and Docker sets that chain's policy to DROP: so,
 * while the node carries a network, one rule accepts what stays within shoal's bridges (Docker
 * has the same for docker0). Inserted first, which Docker's own rules do not undo.
 */
import { run } from './command';

const rule = (prefix: string) => ['FORWARD', '-i', `${prefix}b+`, '-o', `${prefix}b+`, '-j', 'ACCEPT'];

const present = (prefix: string, netns?: string) =>
  run('iptables', ['-w', '-C', ...rule(prefix)], { netns }).then(
    () => true,
    () => false,
  );

/** Accepts forwarding within the prefix's bridges (`on`), or takes that rule away; idempotent. */
export async function allowBridged(prefix: string, on: boolean, netns?: string): Promise<void> {
  const has = await present(prefix, netns);
  if (on && !has) await run('iptables', ['-w', '-I', ...rule(prefix)], { netns });
  if (!on && has) await run('iptables', ['-w', '-D', ...rule(prefix)], { netns });
}
