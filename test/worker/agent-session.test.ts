import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { failStream, unavailable } from '../../src/common/errors';
import { quietLogger } from '../../src/common/logger';
import { shoalProto } from '../../src/common/proto';
import type { DispatcherHandlers } from '../../src/gen/shoal/v1/Dispatcher';
import type { SessionMessage } from '../../src/gen/shoal/v1/SessionMessage';
import type { SessionRequest__Output } from '../../src/gen/shoal/v1/SessionRequest';
import type { Task__Output } from '../../src/gen/shoal/v1/Task';
import { Agent } from '../../src/worker/agent';
import { waitFor } from '../helpers/wait';

type SessionCall = grpc.ServerWritableStream<SessionRequest__Output, SessionMessage>;

/**
 * A manager's dispatcher as the agent sees it, on a real gRPC server: `behave` decides what each
 * Session stream gets, so a test can play a manager that stalls, drops the stream or forgets it.
 */
class TestManager {
  readonly sessions: SessionCall[] = [];
  readonly heartbeats: string[] = [];
  /** Answers the heartbeat of any session but this one's with FAILED_PRECONDITION. */
  current = '';
  private server = new grpc.Server();
  addr = '';

  constructor(private readonly behave: (call: SessionCall, n: number) => void) {}

  async start(): Promise<this> {
    const handlers: Partial<DispatcherHandlers> = {
      Session: (call) => {
        this.sessions.push(call);
        this.behave(call, this.sessions.length);
      },
      Heartbeat: (call, cb) => {
        this.heartbeats.push(call.request.session_id);
        if (call.request.session_id === this.current) cb(null, { period_ms: 50 });
        else cb({ code: grpc.status.FAILED_PRECONDITION, details: 'session is not current; open a new one' });
      },
      UpdateTaskStatus: (_call, cb) => cb(null, {}),
    };
    this.server.addService(shoalProto().Dispatcher.service, handlers as DispatcherHandlers);
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.addr = `127.0.0.1:${port}`;
    return this;
  }

  /** Opens the session as a dispatcher does: a first message with its id. */
  open(call: SessionCall, id: string, heartbeatMs = 60_000): void {
    this.current = id;
    call.write({ session_id: id, heartbeat_period_ms: heartbeatMs, managers: [], assignments: { tasks: [] } });
  }

  /** Sessions still open from the agent's side. */
  live(): SessionCall[] {
    return this.sessions.filter((c) => !c.cancelled && !c.closed);
  }

  stop(): void {
    for (const c of this.sessions) if (!c.cancelled) c.destroy();
    this.server.forceShutdown();
  }
}

const managers: TestManager[] = [];
let agent: Agent | undefined;

afterEach(() => {
  agent?.stop();
  agent = undefined;
  for (const m of managers.splice(0)) m.stop();
});

async function startManagers(...behaviours: Array<(call: SessionCall, n: number) => void>): Promise<TestManager[]> {
  const started = await Promise.all(behaviours.map((b) => new TestManager(b).start()));
  managers.push(...started);
  return started;
}

/** An agent on insecure channels; `assigned` collects each task set it hands the executor. */
function startAgent(addrs: string[], sessionOpenTimeoutMs = 10_000): { assigned: Task__Output[][] } {
  const assigned: Task__Output[][] = [];
  agent = new Agent({
    managers: addrs,
    credentials: () => ({ credentials: grpc.credentials.createInsecure(), options: {} }),
    description: { hostname: 'agent-test' },
    executor: { setNetworks: () => undefined, setAssignments: (tasks) => void assigned.push(tasks), logPath: (id) => `/nonexistent/${id}` },
    onManagers: () => undefined,
    onDesiredRole: () => undefined,
    onRemoved: () => undefined,
    log: quietLogger(),
    sessionOpenTimeoutMs,
  });
  agent.start();
  return { assigned };
}

describe('the agent’s dispatcher session', () => {
  it('moves on to the next manager when one accepts the stream but never opens the session', async () => {
    const [stalled, good] = await startManagers(
      () => undefined,
      (call) => managers[1].open(call, 'good-1'),
    );
    startAgent([stalled.addr, good.addr], 300);
    await waitFor(() => agent!.manager === good.addr, { what: 'a session with the second manager' });
    expect(stalled.sessions).toHaveLength(1);
    await waitFor(() => stalled.live().length === 0, { what: 'the stalled stream cancelled' });
  });

  it('opens exactly one new session when its manager goes away mid-session', async () => {
    const [first, second] = await startManagers(
      (call) => {
        managers[0].open(call, 'first-1');
        // The connection drops as a killed manager's does ("Connection dropped").
        setTimeout(() => managers[0].stop(), 100);
      },
      (call, n) => managers[1].open(call, `second-${n}`),
    );
    startAgent([first.addr, second.addr]);
    await waitFor(() => agent!.manager === second.addr, { what: 'a session with the second manager' });
    // Long enough for a second reconnect, had one drop produced two.
    await new Promise((r) => setTimeout(r, 1000));
    expect(first.sessions).toHaveLength(1);
    expect(second.sessions).toHaveLength(1);
    expect(second.live()).toHaveLength(1);
  });

  it('moves on when a manager refuses the session with an error', async () => {
    const [refusing, good] = await startManagers(
      (call) => failStream(call, unavailable('the cluster store (etcd) did not answer in time')),
      (call) => managers[1].open(call, 'good-1'),
    );
    startAgent([refusing.addr, good.addr]);
    await waitFor(() => agent!.manager === good.addr, { what: 'a session with the second manager' });
    expect(refusing.sessions).toHaveLength(1);
  });

  it('opens a new session when the manager’s heartbeat says it no longer holds this one', async () => {
    const [m] = await startManagers((call, n) => {
      managers[0].open(call, `s-${n}`, 50);
      // The manager drops the first session without a status (grpc-js's destroy() does that), so
      // only the heartbeat can tell.
      if (n === 1) {
        managers[0].current = 'forgotten';
        call.destroy();
      }
    });
    const { assigned } = startAgent([m.addr]);
    await waitFor(() => m.sessions.length === 2 && agent!.manager === m.addr, { what: 'a second session' });
    expect(m.heartbeats).toContain('s-1');
    expect(m.live()).toHaveLength(1);
    expect(assigned.length).toBeGreaterThanOrEqual(2);
  });
});
