import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PipelineError, errorMessage } from '../common/errors.ts';

/**
 * The webhooks the notifier calls, from one JSON file (`NOTIFY_WEBHOOKS_FILE`), validated once
 * at start, unknown keys refused:
 *
 *   { "webhooks": [ { "id": "ops", "url": "https://hooks.slack.com/services/…",
 *                     "secretEnv": "OPS_WEBHOOK_SECRET",
 *                     "experiments": ["checkout-redesign"],          // absent: every experiment
 *                     "events": ["anomaly", "halt", "resume", "lifecycle"] } ] }  // absent: all
 *
 * The secret keys the HMAC signature header; it comes from the environment variable named
 * by `secretEnv` (or, for tests and local use, `secret` in the file), at least 16 characters.
 */
export const NOTIFICATION_KINDS = ['anomaly', 'halt', 'resume', 'lifecycle'] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

export const WEBHOOK_LIMITS = { webhooks: 50, urlLength: 2_048, experiments: 1_000, fileBytes: 256 * 1024 } as const;

const id = z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, dot, dash, underscore; at most 100');
const WebhookSchema = z
  .strictObject({
    id,
    url: z
      .string()
      .max(WEBHOOK_LIMITS.urlLength, `at most ${WEBHOOK_LIMITS.urlLength} characters`)
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'an http:// or https:// URL')
      .refine((u) => !URL.canParse(u) || (new URL(u).username === '' && new URL(u).password === ''), 'no credentials in the URL: use the signature secret'),
    secret: z.string().min(16, 'at least 16 characters').max(1_024).optional(),
    secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]{0,100}$/, 'an environment variable name').optional(),
    experiments: z.array(z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'an experiment id')).min(1).max(WEBHOOK_LIMITS.experiments).optional(),
    events: z.array(z.enum(NOTIFICATION_KINDS)).min(1).optional(),
  })
  .refine((w) => (w.secret === undefined) !== (w.secretEnv === undefined), { message: 'give exactly one of secret and secretEnv' });

const FileSchema = z.strictObject({ webhooks: z.array(WebhookSchema).min(1, 'at least one webhook').max(WEBHOOK_LIMITS.webhooks, `at most ${WEBHOOK_LIMITS.webhooks} webhooks`) });

export interface Webhook {
  id: string;
  url: string;
  secret: string;
  /** Null: every experiment (and pipeline-wide anomalies). */
  experiments: ReadonlySet<string> | null;
  events: ReadonlySet<NotificationKind>;
}

export function parseWebhooks(value: unknown, source: string, env: Record<string, string | undefined> = process.env): Webhook[] {
  const parsed = FileSchema.safeParse(value);
  if (!parsed.success) throw new PipelineError('CONFIG_INVALID', `${source}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ')}`);
  const ids = new Set<string>();
  return parsed.data.webhooks.map((w, i) => {
    if (ids.has(w.id)) throw new PipelineError('CONFIG_INVALID', `${source}: webhooks.${i}.id: '${w.id}' is used twice`);
    ids.add(w.id);
    const secret = w.secret ?? env[w.secretEnv!];
    if (!secret || secret.length < 16) throw new PipelineError('CONFIG_INVALID', `${source}: webhooks.${i}.secretEnv: $${w.secretEnv} must hold the signing secret (at least 16 characters)`);
    return Object.freeze({ id: w.id, url: w.url, secret, experiments: w.experiments ? new Set(w.experiments) : null, events: new Set(w.events ?? NOTIFICATION_KINDS) });
  });
}

export function readWebhooksFile(file: string): Webhook[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PipelineError('CONFIG_INVALID', `notify.webhooksFile: ${errorMessage(err)}`);
  }
  if (text.length > WEBHOOK_LIMITS.fileBytes) throw new PipelineError('CONFIG_INVALID', `${file}: at most ${WEBHOOK_LIMITS.fileBytes} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PipelineError('CONFIG_INVALID', `${file}: not JSON: ${errorMessage(err)}`);
  }
  return parseWebhooks(json, file);
}

/** Whether a webhook wants a notification. */
export function wants(webhook: Webhook, kind: NotificationKind, experimentId: string): boolean {
  return webhook.events.has(kind) && (webhook.experiments === null || webhook.experiments.has(experimentId));
}
