/** One benchmark row: a measured case beside the baseline it is compared with. */
export interface Row {
  group: string;
  name: string;
  value: number;
  baselineName: string;
  baseline: number;
  unit: 'ops/s' | 'bytes';
  /** e.g. "≥ 0.50" (ratio) or "≤ 150 B"; printed with a mark when met. */
  target?: { text: string; met: (row: Row) => boolean };
}

const human = (n: number, unit: Row['unit']) => {
  if (unit === 'bytes') return `${n.toFixed(0)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k/s`;
  return `${n.toFixed(0)} /s`;
};

export function printTable(rows: readonly Row[]): void {
  const header = ['group', 'case', 'result', 'baseline (same run)', 'baseline', 'ratio', 'target'];
  const lines = rows.map((r) => [
    r.group,
    r.name,
    human(r.value, r.unit),
    r.baselineName,
    human(r.baseline, r.unit),
    (r.value / r.baseline).toFixed(2),
    r.target ? `${r.target.text} ${r.target.met(r) ? 'met' : 'NOT met'}` : '',
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c]!.length)));
  const right = new Set([2, 4, 5]);
  const format = (cells: string[]) => cells.map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ');
  console.log(format(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const line of lines) console.log(format(line));
}

/** Median of repeated measurements: the machine is noisy, the median is steadier than the mean. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs subject and baseline alternately `rounds` times and returns the median rate of each, so drift in
 * the machine's speed hits both alike.
 */
export async function compare(
  rounds: number,
  subject: () => Promise<number>,
  baseline: () => Promise<number>,
): Promise<{ value: number; baseline: number }> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    b.push(await baseline());
    a.push(await subject());
  }
  return { value: median(a), baseline: median(b) };
}

/** Operations per second of `run`, which performs `ops` operations. */
export async function rate(ops: number, run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await run();
  return (ops / (performance.now() - started)) * 1000;
}
