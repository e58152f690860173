/**
 * Runs an idempotent pass one at a time. A call while a pass runs is answered by one more pass
 * after it, shared by every call made meanwhile: each caller gets a pass that began after it
 * asked, so it sees the state of its call or newer, and a burst of calls costs two passes.
 */
export class Coalesced<T> {
  private current: Promise<T> | undefined;
  private next: Promise<T> | undefined;

  constructor(private readonly pass: () => Promise<T>) {}

  run(): Promise<T> {
    if (this.next) return this.next;
    if (!this.current) return this.start();
    this.next = this.current.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.next = undefined;
      return this.start();
    });
    return this.next;
  }

  private start(): Promise<T> {
    const p = this.pass();
    this.current = p;
    const done = () => {
      if (this.current === p) this.current = undefined;
    };
    p.then(done, done);
    return p;
  }
}
