/**
 * Runs an async job one at a time: a request while it runs makes it run once more afterwards, however many requests
 * came in meanwhile.
 */
export class Serial {
  readonly #job: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #running = false;
  #again = false;

  constructor(job: () => Promise<void>, onError: (err: unknown) => void) {
    this.#job = job;
    this.#onError = onError;
  }

  request(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    this.#job()
      .catch(this.#onError)
      .finally(() => {
        this.#running = false;
        if (this.#again) {
          this.#again = false;
          this.request();
        }
      });
  }
}
