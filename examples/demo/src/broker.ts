/** A message as the producer sent it: the ID is stamped once, before any retry. */
export interface Message {
  readonly id: string;
  readonly body: { readonly account: number; readonly amount: number };
}

export interface Delivery {
  readonly message: Message;
  readonly attempt: number;
}

/**
 * An in-memory broker with at-least-once delivery: a message stays owed until a worker acks it. A worker
 * that crashes leaves its delivery un-acked and the broker redelivers it after a visibility timeout; a
 * nack redelivers after the delay asked for.
 */
export class SimulatedBroker {
  readonly #ready: Delivery[] = [];
  readonly #waiting: ((delivery: Delivery | undefined) => void)[] = [];
  #owed = 0;
  deliveries = 0;

  constructor(private readonly visibilityTimeoutMs: number) {}

  publish(message: Message): void {
    this.#owed++;
    this.#push({ message, attempt: 1 });
  }

  /** The next delivery, or `undefined` once every published copy has been acked. */
  next(): Promise<Delivery | undefined> {
    const delivery = this.#ready.shift();
    if (delivery) {
      this.deliveries++;
      return Promise.resolve(delivery);
    }
    if (this.#owed === 0) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  ack(_delivery: Delivery): void {
    this.#owed--;
    if (this.#owed === 0) for (const wake of this.#waiting.splice(0)) wake(undefined);
  }

  nack(delivery: Delivery, delayMs: number): void {
    setTimeout(() => this.#push({ message: delivery.message, attempt: delivery.attempt + 1 }), delayMs);
  }

  /** The worker holding `delivery` died without acking it. */
  lost(delivery: Delivery): void {
    this.nack(delivery, this.visibilityTimeoutMs);
  }

  #push(delivery: Delivery): void {
    const wake = this.#waiting.shift();
    if (wake) {
      this.deliveries++;
      wake(delivery);
    } else {
      this.#ready.push(delivery);
    }
  }
}
