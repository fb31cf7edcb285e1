import { createHmac } from 'node:crypto';
import type { Anomaly } from '../common/contracts/anomalies.ts';
import type { AuditRecord } from '../common/contracts/audit.ts';
import type { NotificationKind } from './webhookConfig.ts';

/**
 * What the notifier sends: Slack-compatible JSON (`text`, and `blocks` with one mrkdwn
 * section, which Slack's incoming webhooks show; other receivers read `expstream`, the same
 * facts as fields). Pure.
 */
export interface Notification {
  /** Stable across retries and restarts (from the record's topic coordinates): receivers deduplicate on it. */
  id: string;
  kind: NotificationKind;
  experimentId: string;
  at: number;
  title: string;
  detail: string;
  fields: Record<string, unknown>;
}

const LIFECYCLE = new Set(['DEFINE', 'START', 'CONCLUDE', 'ARCHIVE']);
const DETAIL_CHARS = 2_000;

/** An accepted HALT, RESUME or lifecycle move on exp.audit; undefined for anything else (refusals, rejections). */
export function fromAudit(record: AuditRecord, offset: string): Notification | undefined {
  if (record.decision !== 'ACCEPTED' || !record.action || !record.experimentId) return undefined;
  const kind: NotificationKind | undefined = record.action === 'HALT' ? 'halt' : record.action === 'RESUME' ? 'resume' : LIFECYCLE.has(record.action) ? 'lifecycle' : undefined;
  if (!kind) return undefined;
  return {
    id: `audit-${offset}`,
    kind,
    experimentId: record.experimentId,
    at: record.decidedAt,
    title: `${record.experimentId}: ${record.action} by ${record.issuer ?? 'unknown'}`,
    detail: record.reason,
    fields: { action: record.action, issuer: record.issuer, auditSequence: record.sequence, reasonCode: record.reasonCode ?? null },
  };
}

export function fromAnomaly(anomaly: Anomaly, partition: number, offset: string): Notification {
  return {
    id: `anomaly-${partition}-${offset}`,
    kind: 'anomaly',
    experimentId: anomaly.experimentId,
    at: anomaly.detectedAt,
    title: `${anomaly.experimentId}: ${anomaly.type} (${anomaly.severity})${anomaly.halted ? ', halted' : ''}`,
    detail: [anomaly.variantId && `variant ${anomaly.variantId}`, anomaly.metric && `metric ${anomaly.metric}`].filter(Boolean).join(', ') || 'pipeline-wide',
    fields: { anomalyId: anomaly.anomalyId, type: anomaly.type, severity: anomaly.severity, variantId: anomaly.variantId, metric: anomaly.metric, halted: anomaly.halted, definitionVersion: anomaly.definitionVersion, evidence: safeJson(anomaly.evidence) },
  };
}

/** Slack's mrkdwn treats &, < and > as control characters: escaped as Slack documents. */
function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

export function webhookBody(n: Notification): string {
  const detail = n.detail.length > DETAIL_CHARS ? `${n.detail.slice(0, DETAIL_CHARS)}…` : n.detail;
  const text = `${slackEscape(n.title)}\n${slackEscape(detail)}`;
  return JSON.stringify({
    text,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `*${slackEscape(n.title)}*\n${slackEscape(detail)}` } }],
    expstream: { id: n.id, kind: n.kind, experimentId: n.experimentId, at: n.at, title: n.title, detail, ...n.fields },
  });
}

export const SIGNATURE_HEADER = 'x-expstream-signature';
export const TIMESTAMP_HEADER = 'x-expstream-timestamp';
export const DELIVERY_HEADER = 'x-expstream-delivery';

/** `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`: the receiver recomputes it and refuses old timestamps (replays). */
export function signature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Exponential backoff with ±20 % jitter: the wait before attempt `attempt + 1`. */
export function retryDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const plain = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(Math.min(maxMs, plain * (0.8 + 0.4 * random())));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, DETAIL_CHARS);
  }
}
