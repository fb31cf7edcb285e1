/**
 * A Kafka request again while it fails with a retriable error, for up to a minute: a
 * coordinator loading its log or moving (after a broker restart), or busy writing the markers
 * of the transaction just ended (CONCURRENT_TRANSACTIONS), which kafkajs retries for a
 * transaction's records but not for its offsets or the partitions added by themselves.
 */
export interface RetryOptions {
  /** Gives up (throwing the last error) once this long has passed; 60 s by default. */
  deadlineMs?: number;
  /** Retries only the retriable errors this accepts (default: every retriable one). */
  only?: (err: { type?: string }) => boolean;
}

export async function retriedWhileRetriable<T>(request: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const deadline = Date.now() + (options.deadlineMs ?? 60_000);
  for (let wait = 20; ; wait = Math.min(wait * 2, 1_000)) {
    try {
      return await request();
    } catch (err) {
      const failure = err as { retriable?: boolean; type?: string };
      if (!failure.retriable || (options.only && !options.only(failure)) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
