/**
 * The one shape of a running measurement, whatever the capability: a promise of its done event
 * (every run ends with one, however it ends) and a way to end it early. The CLI (src/cli/
 * lifecycle.ts) and the library API drive every capability through it.
 */
export interface RunHandle<D> {
  /** Resolves with the run's done event; rejects only when the run could not go on (its error). */
  readonly done: Promise<D>;
  /** Ends the run early (a signal, a failed output, the caller): it still ends with its done event. */
  stop(): void;
}
