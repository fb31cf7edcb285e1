import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPipelineError } from '../../services/common/errors.ts';
import { fromAnomaly, fromAudit, retryDelay, signature, webhookBody } from '../../services/notify/notification.ts';
import { parseWebhooks, wants } from '../../services/notify/webhookConfig.ts';

const secret = 's'.repeat(16);
const refusal = (value: unknown, env: Record<string, string> = {}) => {
  try {
    parseWebhooks(value, 'webhooks.json', env);
  } catch (err) {
    expect(isPipelineError(err, 'CONFIG_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('accepted');
};

describe('webhook configuration', () => {
  it('refuses what it cannot call safely, naming the field', () => {
    expect(refusal({ webhooks: [{ id: 'a', url: 'ftp://example.com/x', secret }] })).toContain('webhooks.0.url: an http:// or https:// URL');
    expect(refusal({ webhooks: [{ id: 'a', url: 'not a url', secret }] })).toContain('webhooks.0.url');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://user:pw@example.com/x', secret }] })).toContain('no credentials in the URL');
    expect(refusal({ webhooks: [{ id: 'a', url: `https://example.com/${'x'.repeat(3_000)}`, secret }] })).toContain('at most 2048 characters');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com', secret: 'short' }] })).toContain('at least 16 characters');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com' }] })).toContain('give exactly one of secret and secretEnv');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com', secretEnv: 'HOOK_SECRET' }] })).toContain('$HOOK_SECRET must hold the signing secret');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com', secret, events: ['everything'] }] })).toContain('webhooks.0.events.0');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com', secret, colour: 'red' }] })).toContain('colour');
    expect(refusal({ webhooks: [{ id: 'a', url: 'https://example.com', secret }, { id: 'a', url: 'https://example.org', secret }] })).toContain("'a' is used twice");
    expect(refusal({ webhooks: Array.from({ length: 51 }, (_, i) => ({ id: `w${i}`, url: 'https://example.com', secret })) })).toContain('at most 50 webhooks');
  });

  it('routes by experiment and kind; a webhook without experiments gets every experiment', () => {
    const [all, team] = parseWebhooks({ webhooks: [
      { id: 'all', url: 'https://example.com/a', secret },
      { id: 'team', url: 'https://example.com/b', secretEnv: 'TEAM', experiments: ['checkout'], events: ['halt'] },
    ] }, 'webhooks.json', { TEAM: 't'.repeat(20) });
    expect(team!.secret).toBe('t'.repeat(20));
    expect([wants(all!, 'lifecycle', 'x'), wants(team!, 'halt', 'checkout'), wants(team!, 'resume', 'checkout'), wants(team!, 'halt', 'search')]).toEqual([true, true, false, false]);
  });
});

describe('notifications', () => {
  const audit = { sequence: 4, previousHash: '', recordHash: '', decidedAt: 1_000, decision: 'ACCEPTED' as const, reason: 'spike <b>', commandId: 'c', experimentId: 'checkout', action: 'HALT', issuer: 'guardian', sourceTopic: 't', sourcePartition: 0, sourceOffset: 3, reasonCode: 'HALTED' };

  it('notifies accepted halts, resumes and lifecycle moves, never rejected commands', () => {
    expect(fromAudit(audit, '17')).toMatchObject({ id: 'audit-17', kind: 'halt', experimentId: 'checkout', title: 'checkout: HALT by guardian' });
    expect(fromAudit({ ...audit, action: 'START' }, '1')!.kind).toBe('lifecycle');
    expect(fromAudit({ ...audit, action: 'RESUME' }, '1')!.kind).toBe('resume');
    expect(fromAudit({ ...audit, decision: 'REJECTED' }, '1')).toBeUndefined();
    expect(fromAudit({ ...audit, experimentId: null }, '1')).toBeUndefined();
  });

  it('sends Slack-compatible JSON with markup escaped, signed over timestamp and body', () => {
    const body = webhookBody(fromAnomaly({ anomalyId: 'a', experimentId: 'e', type: 'SAMPLE_RATIO_MISMATCH', severity: 'critical', variantId: 'b<1>', metric: null, definitionVersion: 1, detectedAt: 5, halted: true, evidence: '{"x":1}' }, 0, '9'));
    const parsed = JSON.parse(body) as { text: string; blocks: { text: { text: string } }[]; expstream: Record<string, unknown> };
    expect(parsed.text).toBe('e: SAMPLE_RATIO_MISMATCH (critical), halted\nvariant b&lt;1&gt;');
    expect(parsed.blocks[0]!.text.text).toBe('*e: SAMPLE_RATIO_MISMATCH (critical), halted*\nvariant b&lt;1&gt;');
    expect(parsed.expstream).toMatchObject({ id: 'anomaly-0-9', kind: 'anomaly', evidence: { x: 1 }, halted: true });
    expect(signature('k'.repeat(16), 123, body)).toBe(`v1=${createHmac('sha256', 'k'.repeat(16)).update(`123.${body}`).digest('hex')}`);
  });

  it('backs off exponentially with jitter, capped', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelay(n, 1_000, 10_000, () => 0.5))).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
    expect(retryDelay(1, 1_000, 10_000, () => 0)).toBe(800);
    expect(retryDelay(1, 1_000, 10_000, () => 1)).toBe(1_200);
    expect(retryDelay(30, 1_000, 10_000, () => 1)).toBe(10_000);
  });
});
