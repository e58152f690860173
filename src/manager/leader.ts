import type { Campaign, Etcd3 } from 'etcd3';
import type { Logger } from '../common/logger';
import { settleWithin, STOP_COURTESY_MS } from '../common/settle';
import { allocate } from './allocator/pass';
import { Compactor } from './compactor';
import { changesOrchestration, orchestrate, ServiceScope } from './orchestrator/pass';
import { ReconcileLoop } from './reconcile-loop';
import { Reaper } from './reaper';
import { changesPlacement, schedulePending } from './scheduling';
import { type Change, changedTasks, StoreCache } from './store/cache';
import type { Fence, Kind, Store } from './store/store';

export const LEADER_ELECTION = 'shoal/leader';
// etcd3's Election keeps one key per candidate under this prefix, holding the candidate's value.
const CANDIDATES_PREFIX = `election/${LEADER_ELECTION}/`;
const LEASE_TTL_S = 5;
/** What the allocator's plan reads: a change to any of them may take or free an address. */
const ALLOCATOR_KINDS: (Kind | 'reload')[] = ['services', 'tasks', 'networks', 'task-networks', 'service-vips', 'nodes', 'node-ingress', 'reload'];

/**
 * Campaigns for leadership through etcd and, while leader, runs the control loops. Exactly one
 * manager decides; everything it decides is in etcd, so a new leader just starts its loops.
 */
export class Leadership {
  private campaign: Campaign | undefined;
  private unwatch: (() => void) | undefined;
  private readonly cache: StoreCache;
  /** A cache passed in is started and stopped by whoever made it; one made here, by this. */
  private readonly ownsCache: boolean;
  private leader = false;
  /** Bumped on every election and step-down, so a lead() outlived by a step-down does nothing. */
  private term = 0;
  private readonly orchestrator: ReconcileLoop;
  /** The services the orchestrator's next pass must plan. */
  private readonly orchestratorScope = new ServiceScope();
  private readonly scheduler: ReconcileLoop;
  private readonly allocator: ReconcileLoop;
  private readonly reaper: ReconcileLoop;
  private readonly reaperState: Reaper;
  private readonly compactor: ReconcileLoop;
  private readonly compactorState: Compactor;

  constructor(
    private readonly etcd: Etcd3,
    store: Store,
    private readonly nodeId: string,
    private readonly log: Logger,
    cache?: StoreCache,
  ) {
    this.ownsCache = !cache;
    this.cache = cache ?? new StoreCache(store, log.child({ component: 'cache' }));
    const orchestratorLog = log.child({ component: 'orchestrator' });
    const schedulerLog = log.child({ component: 'scheduler' });
    this.orchestrator = new ReconcileLoop('orchestrator', () => orchestrate(this.cache, orchestratorLog, this.orchestratorScope), orchestratorLog);
    this.scheduler = new ReconcileLoop('scheduler', () => schedulePending(this.cache, schedulerLog), schedulerLog);
    const allocatorLog = log.child({ component: 'allocator' });
    this.allocator = new ReconcileLoop('allocator', () => allocate(this.cache, allocatorLog), allocatorLog);
    this.reaperState = new Reaper(store, this.cache, etcd, log.child({ component: 'reaper' }));
    this.reaper = new ReconcileLoop('reaper', () => this.reaperState.pass(), log.child({ component: 'reaper' }));
    const compactorLog = log.child({ component: 'compactor' });
    this.compactorState = new Compactor(etcd, compactorLog);
    this.compactor = new ReconcileLoop('compactor', () => this.compactorState.pass(), compactorLog);
  }

  get isLeader(): boolean {
    return this.leader;
  }

  async start(): Promise<void> {
    if (this.ownsCache) await this.cache.start();
    this.unwatch = this.cache.onChange((kind, id, change) => this.onChange(kind, id, change));
    await this.dropStaleCandidacy();
    this.campaignOnce();
  }

  /**
   * A candidacy left by this node's previous process (after a kill -9) would hold leadership until
   * its lease expires; removing it lets the restarted daemon lead at once.
   */
  private async dropStaleCandidacy(): Promise<void> {
    const { kvs } = await this.etcd.getAll().prefix(CANDIDATES_PREFIX).exec();
    for (const kv of kvs) {
      if (kv.value.toString() !== this.nodeId) continue;
      await this.etcd.delete().key(kv.key).exec();
      this.log.info('removed the leader candidacy of this node’s previous process');
    }
  }

  private campaignOnce(): void {
    const campaign = this.etcd.election(LEADER_ELECTION, LEASE_TTL_S).campaign(this.nodeId);
    this.campaign = campaign;
    campaign.on('elected', () => {
      // Taking over reads etcd, which may fail (or be closed by stop()) meanwhile.
      this.lead(campaign).catch((err) => {
        if (this.campaign !== campaign) return;
        this.campaignAgain(campaign, err, 'taking over as leader failed');
        void campaign.resign().catch(() => undefined);
      });
    });
    campaign.on('error', (err) => this.campaignAgain(campaign, err, 'lost leadership or campaign failed'));
  }

  private campaignAgain(campaign: Campaign, err: unknown, what: string): void {
    this.log.error({ err }, `${what}; campaigning again`);
    this.stepDown();
    if (this.campaign === campaign) setTimeout(() => this.campaign === campaign && this.campaignOnce(), 1000).unref();
  }

  /**
   * The cache's watch may lag behind what the previous leader wrote, and a loop planning from
   * older state could, for one, create a slot's task twice: so the loops start from a fresh load.
   */
  private async lead(campaign: Campaign): Promise<void> {
    const term = ++this.term;
    const fence = await this.fenceOf(campaign);
    await this.cache.refresh();
    if (this.campaign !== campaign || this.term !== term) return;
    this.cache.fence = fence;
    this.leader = true;
    this.log.info('became leader; starting orchestrator, scheduler, allocator, node reaper and store compactor');
    this.reaperState.reset();
    this.compactorState.reset();
    this.orchestratorScope.markAll();
    this.orchestrator.start();
    this.scheduler.start();
    this.allocator.start();
    this.reaper.start();
    this.compactor.start();
  }

  /** This term's election key as etcd holds it: what every leader write is conditional on. */
  private async fenceOf(campaign: Campaign): Promise<Fence> {
    const key = await campaign.getCampaignKey();
    const res = await this.etcd.get(key).exec();
    return { key, createRevision: Number(res.kvs[0]?.create_revision ?? -1) };
  }

  /** Runs after the cache applied the change, so the pass it kicks sees it. */
  private onChange(kind: Kind | 'reload', id: string, change?: Change): void {
    if (!this.leader) return;
    if (kind === 'services' || kind === 'nodes' || kind === 'reload' || (kind === 'tasks' && changesOrchestration(change))) {
      this.scopeOrchestrator(kind, id, change);
      this.orchestrator.kick();
    }
    if ((kind === 'tasks' && changesPlacement(change)) || kind === 'nodes' || kind === 'reload') this.scheduler.kick();
    if (ALLOCATOR_KINDS.includes(kind)) this.allocator.kick();
  }

  private scopeOrchestrator(kind: Kind | 'reload', id: string, change?: Change): void {
    if (kind === 'services') return this.orchestratorScope.mark(id);
    const tasks = changedTasks(change);
    if (kind !== 'tasks' || !tasks.length) return this.orchestratorScope.markAll();
    for (const t of tasks) this.orchestratorScope.mark(t.service_id);
  }

  private stepDown(): void {
    this.term++;
    this.leader = false;
    this.cache.fence = undefined;
    this.orchestrator.stop();
    this.scheduler.stop();
    this.allocator.stop();
    this.reaper.stop();
    this.compactor.stop();
  }

  async stop(): Promise<void> {
    this.stepDown();
    const campaign = this.campaign;
    this.campaign = undefined;
    this.unwatch?.();
    if (this.ownsCache) await this.cache.stop();
    // Resigning hands leadership over at once rather than when the lease runs out.
    await settleWithin(campaign?.resign(), STOP_COURTESY_MS);
  }
}
