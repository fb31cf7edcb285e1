import type { Admin, Kafka } from 'kafkajs';
import { errorMessage } from './errors.ts';
import type { HealthReport } from './health.ts';

/**
 * Answers /readyz: does the broker answer this process right now? One admin client, reused,
 * replaced after a failure (it may hold dead connections); each probe bounded in time so a
 * probe never hangs on a broker that is gone.
 */
export function brokerProbe(kafka: Kafka, timeoutMs = 3_000): { check(): Promise<HealthReport>; close(): Promise<void> } {
  let admin: Admin | undefined;
  const reset = async () => {
    const old = admin;
    admin = undefined;
    await old?.disconnect().catch(() => {});
  };
  return {
    check: async () => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          (async () => {
            if (!admin) {
              admin = kafka.admin({ retry: { retries: 0 } });
              await admin.connect();
            }
            await admin.describeCluster();
          })(),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
        ]);
        return { healthy: true, problems: [] };
      } catch (err) {
        await reset();
        return { healthy: false, problems: [`broker: ${errorMessage(err)}`] };
      } finally {
        clearTimeout(timer);
      }
    },
    close: reset,
  };
}
