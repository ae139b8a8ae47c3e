/** The downstream system the handler writes to: it counts how often each message's effect was applied. */
export class Ledger {
  readonly #applied = new Map<string, number>();

  apply(id: string): void {
    this.#applied.set(id, (this.#applied.get(id) ?? 0) + 1);
  }

  has(id: string): boolean {
    return this.#applied.has(id);
  }

  /** Effects applied more than once, and messages whose effect was never applied. */
  audit(ids: Iterable<string>): { duplicateEffects: number; lost: number } {
    let duplicateEffects = 0;
    let lost = 0;
    for (const id of ids) {
      const count = this.#applied.get(id) ?? 0;
      if (count === 0) lost++;
      else duplicateEffects += count - 1;
    }
    return { duplicateEffects, lost };
  }
}
