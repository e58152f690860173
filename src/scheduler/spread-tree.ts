import { Heap } from './heap';
import type { NodeInfo } from './node-info';

/** A candidate node and its count of the service's tasks, kept here so comparisons need no lookup. */
interface Candidate {
  info: NodeInfo;
  tasks: number;
}

/** Nodes that share the values of the preference labels down to this level. */
interface Branch {
  /** The label's value; nodes without the label share the empty value. */
  value: string;
  /** Live tasks of the service on this branch's nodes, whether or not they are candidates. */
  tasks: number;
  children: Map<string, Branch>;
  /** Inner branches: children with a candidate left, emptiest first. */
  branches?: Heap<Branch>;
  /** Leaves: candidate nodes, best first. */
  nodes?: Heap<Candidate>;
}

const newBranch = (value: string): Branch => ({ value, tasks: 0, children: new Map() });
const branchLess = (a: Branch, b: Branch) => a.tasks < b.tasks || (a.tasks === b.tasks && a.value < b.value);
const isEmpty = (b: Branch) => (b.branches ?? b.nodes)!.size === 0;
const nodeLess = (a: Candidate, b: Candidate) =>
  a.tasks < b.tasks || (a.tasks === b.tasks && (a.info.totalTasks < b.info.totalTasks || (a.info.totalTasks === b.info.totalTasks && a.info.id < b.info.id)));

/**
 * Swarm's placement preferences as a decision tree: each level splits the nodes by one label's
 * value, and every task goes down the branch holding the fewest tasks of its service at each
 * level, then to the best node of the leaf (fewest tasks of the service, then fewest tasks, then
 * lowest id). Without preferences the tree is one leaf. Heaps keep each step O(log n).
 */
export class SpreadTree {
  private readonly root = newBranch('');
  private readonly path: Branch[] = [];

  /** `others` are the nodes that may not take the task: they only count towards their branch. */
  constructor(serviceId: string, labels: string[], candidates: NodeInfo[], others: NodeInfo[]) {
    const leaves = new Map<Branch, Candidate[]>();
    const add = (info: NodeInfo, candidate: boolean) => {
      const tasks = info.tasksOf(serviceId);
      let branch = this.root;
      for (const label of labels) {
        const value = info.node.spec?.labels?.[label] ?? '';
        let next = branch.children.get(value);
        if (!next) branch.children.set(value, (next = newBranch(value)));
        next.tasks += tasks;
        branch = next;
      }
      if (!candidate) return;
      const list = leaves.get(branch);
      if (list) list.push({ info, tasks });
      else leaves.set(branch, [{ info, tasks }]);
    };
    for (const info of candidates) add(info, true);
    // Without preferences there is one branch, and what the others hold does not matter.
    if (labels.length) for (const info of others) add(info, false);
    const build = (branch: Branch): boolean => {
      if (!branch.children.size) branch.nodes = new Heap(nodeLess, leaves.get(branch));
      else branch.branches = new Heap(branchLess, [...branch.children.values()].filter(build));
      return !isEmpty(branch);
    };
    build(this.root);
  }

  /** The node the next task should go to, or undefined when no candidate is left. */
  next(): NodeInfo | undefined {
    this.path.length = 0;
    let branch = this.root;
    if (isEmpty(branch)) return undefined;
    while (branch.branches) {
      this.path.push(branch);
      branch = branch.branches.peek()!;
    }
    this.path.push(branch);
    return branch.nodes!.peek()!.info;
  }

  /** Records that the node `next` returned took a task; `fits` says whether it can take another. */
  placed(fits: boolean): void {
    const path = this.path;
    const leaf = path[path.length - 1].nodes!;
    leaf.peek()!.tasks++;
    if (fits) leaf.topChanged();
    else leaf.pop();
    let emptied = leaf.size === 0;
    for (let i = path.length - 1; i > 0; i--) {
      path[i].tasks++;
      const siblings = path[i - 1].branches!;
      if (emptied) siblings.pop();
      else siblings.topChanged();
      emptied = siblings.size === 0;
    }
  }
}
