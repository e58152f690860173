/** The median of some figures (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const figure = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

/** Runs `once` `runs` times, printing each run's figures, then their medians under `title`. */
export async function printRuns(runs: number, title: string, once: (run: number) => Promise<Record<string, number>>): Promise<void> {
  const results: Record<string, number>[] = [];
  for (let i = 1; i <= runs; i++) {
    const r = await once(i);
    results.push(r);
    console.log(`run ${i}: ${Object.entries(r).map(([k, v]) => `${k} ${figure(v)}`).join(', ')}`);
  }
  console.log(`median of ${runs}${title}: ${Object.keys(results[0]).map((k) => `${k} ${figure(median(results.map((r) => r[k])))}`).join(', ')}`);
}
