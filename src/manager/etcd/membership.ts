import type { Etcd3, IMember } from 'etcd3';
import { failedPrecondition, unavailable } from '../../common/errors';

const PROMOTE_TIMEOUT_MS = 60_000;
const PROMOTE_RETRY_MS = 300;

export interface AddedMember {
  memberId: string;
  /** name=peerURL of every member, the new one included, for its --initial-cluster. */
  initialCluster: string;
  /** Client URLs of the members already serving. */
  clientUrls: string[];
}

/**
 * Adds a member as a raft learner: it receives the log but does not vote, so a new member that
 * fails to start cannot cost the cluster its quorum. A member left over from an earlier failed
 * add of the same peer URL is removed first, since restarting it on a fresh data dir would panic it.
 */
export async function addLearner(etcd: Etcd3, name: string, peerUrl: string): Promise<AddedMember> {
  const { members } = await etcd.cluster.memberList({ linearizable: true });
  const stale = members.find((m) => m.peerURLs.includes(peerUrl));
  if (stale) {
    if (!stale.isLearner && stale.name) throw failedPrecondition(`an etcd member already serves ${peerUrl}; remove that node first`);
    await etcd.cluster.memberRemove({ ID: stale.ID });
  }
  const res = await retryWhileUnhealthy(() => etcd.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true }));
  const added = res.member!;
  const initialCluster = res.members
    .map((m) => `${m.ID === added.ID ? name : m.name}=${m.peerURLs[0]}`)
    .filter((entry) => !entry.startsWith('='))
    .join(',');
  return { memberId: added.ID, initialCluster, clientUrls: clientUrlsOf(res.members) };
}

// etcd refuses a member add until its leader has been connected to every voter for a few seconds,
// which is not yet the case just after the previous manager joined.
const UNHEALTHY_RETRY_MS = 20_000;

async function retryWhileUnhealthy<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + UNHEALTHY_RETRY_MS;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!/unhealthy cluster/i.test((err as Error).message) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, PROMOTE_RETRY_MS));
    }
  }
}

/** Promotes a learner once it has caught up with the leader (etcd refuses before that). */
export async function promoteWhenCaughtUp(etcd: Etcd3, memberId: string): Promise<void> {
  const deadline = Date.now() + PROMOTE_TIMEOUT_MS;
  for (;;) {
    try {
      await etcd.cluster.memberPromote({ ID: memberId });
      return;
    } catch (err) {
      const message = (err as Error).message;
      if (/not a learner|is not a learner/i.test(message)) return;
      if (Date.now() > deadline) throw unavailable(`the new etcd member did not catch up within ${PROMOTE_TIMEOUT_MS / 1000}s: ${message}`);
      await new Promise((r) => setTimeout(r, PROMOTE_RETRY_MS));
    }
  }
}

/** Removes a member; one that is already gone is fine. */
export async function removeMember(etcd: Etcd3, memberId: string): Promise<void> {
  try {
    await etcd.cluster.memberRemove({ ID: memberId });
  } catch (err) {
    if (!/member not found/i.test((err as Error).message)) throw err;
  }
}

export async function listMembers(etcd: Etcd3): Promise<IMember[]> {
  return (await etcd.cluster.memberList({ linearizable: true })).members;
}

export const clientUrlsOf = (members: IMember[]): string[] => members.flatMap((m) => m.clientURLs);
