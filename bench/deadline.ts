/** Deadlines for benchmark phases: a phase that stops making progress fails with a message instead of hanging. */

/**
 * Runs `work` and rejects with "`what` did not finish within …" once `ms` have passed. The signal
 * given to `work` aborts at that moment, so it can stop its clients and child processes; the
 * rejection does not wait for it to do so.
 */
export async function withDeadline<T>(what: string, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`${what} did not finish within ${(ms / 1000).toFixed(0)} s`);
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
