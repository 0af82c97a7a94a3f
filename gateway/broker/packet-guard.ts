/**
 * Reads the MQTT fixed header of every packet as the bytes pass by and stops the connection as soon as a packet
 * declares a remaining length above the limit: Aedes's parser (mqtt-packet) would buffer the whole body first, so a
 * client declaring 256 MB could make the gateway hold 256 MB. The bytes themselves go on to Aedes unchanged
 * (aedes-internals.ts, section 5, puts this in front of Aedes's reads).
 */

/** The fixed headers in a byte stream: what each packet declares as its remaining length. */
export class FrameMeter {
  readonly #limit: number;
  #state: 'type' | 'length' | 'body' = 'type';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Follows the packets in `chunk`; returns the declared length that went over the limit, or null. */
  over(chunk: Buffer): number | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'body') {
        const n = Math.min(this.#remaining, chunk.length - i);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = 'type';
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.#state === 'type') {
        this.#state = 'length';
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      if (this.#length > this.#limit) return this.#length;
      if ((byte & 0x80) === 0) {
        this.#remaining = this.#length;
        this.#state = this.#remaining > 0 ? 'body' : 'type';
      } else if (this.#lengthBytes === 4) {
        // [MQTT-2.2.3]: at most four bytes; Aedes's parser reports the malformed packet itself.
        this.#state = 'type';
      }
    }
    return null;
  }
}
