/**
 * Routed and bridged traffic of a node's containers passes the host's iptables FORWARD chain (the
 * bridged part when bridge netfilter is on), and Docker sets that chain's policy to DROP: so,
 * while the node carries a network, two rules accept what shoal's bridges need, as Docker has for
 * docker0: whatever a container sends (the node's own table keeps networks apart, mesh.ts), and
 * what comes back to it or was sent to it through a published port. Inserted first, which
 * Docker's own rules do not undo.
 */
import { run } from './command';

const rules = (prefix: string) => [
  ['FORWARD', '-i', `${prefix}b+`, '-j', 'ACCEPT'],
  ['FORWARD', '-o', `${prefix}b+`, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-j', 'ACCEPT'],
];

const present = (rule: string[], netns?: string) =>
  run('iptables', ['-w', '-C', ...rule], { netns }).then(
    () => true,
    () => false,
  );

/** Accepts forwarding for the prefix's bridges (`on`), or takes those rules away; idempotent. */
export async function allowBridged(prefix: string, on: boolean, netns?: string): Promise<void> {
  for (const rule of rules(prefix)) {
    const has = await present(rule, netns);
    if (on && !has) await run('iptables', ['-w', '-I', ...rule], { netns });
    if (!on && has) await run('iptables', ['-w', '-D', ...rule], { netns });
  }
}
