import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, retryDelay, signature, webhookBody, type Notification } from './notification.ts';
import type { Webhook } from './webhookConfig.ts';

/**
 * Delivers notifications to webhooks: each (notification, webhook) pair is POSTed with the
 * HMAC signature, retried with exponential backoff on a network error, a timeout, a 5xx, 408
 * or 429, and given up after `maxAttempts` (or at once on another 4xx: the receiver refuses
 * the request itself). Every attempt and every outcome is appended to the delivery log (JSON
 * lines) and counted. Deliveries run on timers, never inline with anything that waits for
 * them; `settled` resolves once a notification is delivered or given up everywhere.
 */
export interface DeliveryOptions {
  webhooks: readonly Webhook[];
  deliveryLog: string;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  timeoutMs: number;
  metrics: Registry;
  logger: Logger;
}

export type DeliveryRecord =
  | { record: 'attempt'; notificationId: string; webhook: string; experimentId: string; kind: string; attempt: number; at: number; status: number | null; error: string | null; durationMs: number; nextAttemptInMs: number | null }
  | { record: 'outcome'; notificationId: string; webhook: string; experimentId: string; kind: string; outcome: 'DELIVERED' | 'GAVE_UP'; attempts: number; firstAttemptAt: number; settledAt: number; status: number | null; error: string | null };

/** At most this many deliveries wait at once; more hold the reader back (consumption pauses). */
export const MAX_PENDING_DELIVERIES = 10_000;

export class WebhookDelivery {
  private pending = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<AbortController>();
  private stopped = false;
  private readonly attempts: Counter;
  private readonly outcomes: Counter;

  constructor(private readonly options: DeliveryOptions) {
    mkdirSync(dirname(options.deliveryLog), { recursive: true });
    this.attempts = new Counter({ name: 'notify_attempts_total', help: 'Webhook delivery attempts, by webhook and result', labelNames: ['webhook', 'result'], registers: [options.metrics] });
    this.outcomes = new Counter({ name: 'notify_deliveries_total', help: 'Notifications settled per webhook, by outcome', labelNames: ['webhook', 'outcome'], registers: [options.metrics] });
    const delivery = this;
    new Gauge({ name: 'notify_pending_deliveries', help: 'Deliveries not yet settled', registers: [options.metrics], collect() {
      this.set(delivery.pending);
    } });
  }

  get pendingDeliveries(): number {
    return this.pending;
  }

  /** Starts delivering to every webhook that wants it; resolves when all of them have settled. */
  deliver(notification: Notification, targets: readonly Webhook[]): Promise<void> {
    return Promise.all(targets.map((w) => new Promise<void>((settled) => {
      this.pending++;
      const body = webhookBody(notification);
      const first = Date.now();
      const attempt = async (n: number) => {
        if (this.stopped) return settled();
        const started = Date.now();
        const { status, error } = await this.post(w, notification.id, body);
        const ok = status !== null && status >= 200 && status < 300;
        const retriable = !ok && (status === null || status >= 500 || status === 408 || status === 429);
        const again = retriable && n < this.options.maxAttempts && !this.stopped;
        const wait = again ? retryDelay(n, this.options.retryBaseMs, this.options.retryMaxMs) : null;
        this.attempts.inc({ webhook: w.id, result: ok ? 'ok' : status === null ? 'error' : String(status) });
        this.record({ record: 'attempt', notificationId: notification.id, webhook: w.id, experimentId: notification.experimentId, kind: notification.kind, attempt: n, at: started, status, error, durationMs: Date.now() - started, nextAttemptInMs: wait });
        if (wait !== null) {
          const timer = setTimeout(() => {
            this.timers.delete(timer);
            void attempt(n + 1);
          }, wait);
          this.timers.add(timer);
          return;
        }
        if (this.stopped && !ok && retriable) return settled(); // not given up: a restarted notifier delivers it again
        const outcome = ok ? 'DELIVERED' : 'GAVE_UP';
        this.outcomes.inc({ webhook: w.id, outcome });
        this.record({ record: 'outcome', notificationId: notification.id, webhook: w.id, experimentId: notification.experimentId, kind: notification.kind, outcome, attempts: n, firstAttemptAt: first, settledAt: Date.now(), status, error });
        if (!ok) this.options.logger.warn({ webhook: w.id, notificationId: notification.id, attempts: n, status, error }, 'notify.gave_up');
        this.pending--;
        settled();
      };
      void attempt(1);
    }))).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inFlight) c.abort();
  }

  private async post(webhook: Webhook, id: string, body: string): Promise<{ status: number | null; error: string | null }> {
    const timestamp = Date.now();
    const controller = new AbortController();
    this.inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    try {
      const response = await fetch(webhook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signature(webhook.secret, timestamp, body), [TIMESTAMP_HEADER]: String(timestamp), [DELIVERY_HEADER]: id, 'user-agent': 'expstream-notify' },
        body,
        signal: controller.signal,
        redirect: 'manual',
      });
      // The answer's body is not needed: drain it (bounded by the timeout) so the connection is reused.
      await response.arrayBuffer().catch(() => undefined);
      return { status: response.status, error: null };
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      return { status: null, error: errorMessage(cause ?? err).slice(0, 300) };
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(controller);
    }
  }

  private record(entry: DeliveryRecord): void {
    try {
      appendFileSync(this.options.deliveryLog, `${JSON.stringify(entry)}\n`);
    } catch (err) {
      this.options.logger.error({ err, file: this.options.deliveryLog }, 'notify.delivery_log_failed');
    }
    this.options.logger.info(entry, entry.record === 'attempt' ? 'notify.attempt' : 'notify.settled');
  }
}
