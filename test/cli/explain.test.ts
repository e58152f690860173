import { status } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from '../../src/cli/client';

// explain() only reads the error and whether the socket exists: no daemon is needed.
const client = new Client('/nonexistent/shoal.sock');
const explain = (code: status, details: string) => client.explain({ code, details, message: `${code} ${status[code]}: ${details}` });

afterAll(() => client.close());

describe('CLI error sentences', () => {
  it('says the socket is root-only and how to get access', () => {
    const e = explain(status.UNAVAILABLE, 'No connection established. Last error: Error: connect EACCES /nonexistent/shoal.sock. Resolution note: ');
    expect(e.message).toBe("permission denied on /nonexistent/shoal.sock: the daemon's socket is root-only (like docker.sock); run shoal as root, e.g. with sudo");
  });

  it('says that shoald went away when the connection drops mid-call, and that the effect is unknown', () => {
    expect(explain(status.UNAVAILABLE, 'read ECONNRESET').message).toBe(
      'shoald went away during the command (read ECONNRESET); whatever it was changing may or may not have happened: check with `shoal service ls` once shoald is back',
    );
  });

  it('says how to start shoald when there is no socket', () => {
    expect(explain(status.UNAVAILABLE, 'No connection established. Last error: Error: connect ENOENT /nonexistent/shoal.sock. Resolution note: ').message).toMatch(
      /^cannot connect to the shoal daemon at \/nonexistent\/shoal\.sock: is shoald running\?/,
    );
  });

  it('passes the daemon’s own UNAVAILABLE sentence through, though it quotes a connection error', () => {
    const sentence = 'the cluster store (etcd) is unavailable: 14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379';
    expect(explain(status.UNAVAILABLE, sentence).message).toBe(sentence);
  });
});
