/**
 * The gate in front of QoS 1/2: while a refusal holds (backlog budget reached, disk nearly full), new QoS 1/2 readings
 * are not acked, so the device keeps them and sends them again later. Each change is logged once.
 */
import type { RefusalCode } from '../domain/errors.js';
import type { Logger } from '../shared/log.js';

export interface Refusal {
  code: RefusalCode;
  reason: string;
}

export class Gate {
  readonly #refusal: () => Refusal | null;
  readonly #log: Logger;
  /** The refusal last logged. */
  #logged: Refusal | null = null;

  constructor(refusal: () => Refusal | null, log: Logger) {
    this.#refusal = refusal;
    this.#log = log;
  }

  /** Why a reading must be refused right now (a QoS 1/2 one; any one when the disk is full), or null. */
  check(): Refusal | null {
    const now = this.#refusal();
    if (now?.code !== this.#logged?.code) {
      if (now) this.#log.warn({ code: now.code }, `${now.reason}: new QoS 1/2 readings are not acked until it clears`);
      else this.#log.info({ code: this.#logged?.code }, 'acking QoS 1/2 readings again');
      this.#logged = now;
    }
    return now;
  }
}
