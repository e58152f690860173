import { describe, expect, it } from 'vitest';
import { FULL_PASS_MS, ServiceScope } from '../../src/manager/orchestrator/pass';

describe('ServiceScope', () => {
  it('plans every service first, then only those marked since the last pass', () => {
    const scope = new ServiceScope();
    expect(scope.take(0)).toBe('all');
    expect(scope.take(1)).toEqual(new Set());
    scope.mark('a');
    scope.mark('b');
    scope.mark('a');
    expect(scope.take(2)).toEqual(new Set(['a', 'b']));
    expect(scope.take(3)).toEqual(new Set());
  });

  it('plans every service after markAll, and at least every FULL_PASS_MS', () => {
    const scope = new ServiceScope();
    scope.take(0);
    scope.markAll();
    expect(scope.take(1)).toBe('all');
    scope.mark('a');
    expect(scope.take(1 + FULL_PASS_MS)).toBe('all');
    expect(scope.take(2 + FULL_PASS_MS)).toEqual(new Set());
  });

  it('plans a service again once the time it asked to be woken at has come', () => {
    const scope = new ServiceScope();
    scope.take(0);
    scope.wakeAt('a', 500);
    scope.wakeAt('a', 300);
    expect(scope.take(299)).toEqual(new Set());
    expect(scope.take(300)).toEqual(new Set(['a']));
    expect(scope.take(301)).toEqual(new Set());
  });
});
