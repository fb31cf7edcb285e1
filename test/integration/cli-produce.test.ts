import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventSchemas } from '../../services/common/eventSchemas.ts';
import { unframe } from '../../services/common/wireFormat.ts';
import { runExpctl } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { readTopic } from '../support/topicReader.ts';

describe('expctl produce', () => {
  it('publishes the good lines as Avro keyed by user, reports each bad line with its number, exits 1', async () => {
    const pipeline = testPipeline('cli-produce');
    const dir = mkdtempSync(join(tmpdir(), 'produce-'));
    const file = join(dir, 'exposures.jsonl');
    const good = Array.from({ length: 50 }, (_, i) => JSON.stringify({ eventId: `e${i}`, experimentId: 'exp', variantId: i % 2 ? 'a' : 'b', userId: `u${i}`, eventTime: i % 2 ? Date.now() : new Date().toISOString() }));
    const lines = [
      ...good.slice(0, 10),
      '{ broken json',
      JSON.stringify({ eventId: 'x', experimentId: 'exp', variantId: 'a', userID: 'typo', eventTime: 1 }),
      '',
      JSON.stringify({ eventId: 'x', experimentId: 'exp', variantId: 'a', userId: 'u', eventTime: 'yesterday' }),
      JSON.stringify({ eventId: 'x', experimentId: '', variantId: 'a', userId: 'u', eventTime: 1 }),
      ...good.slice(10),
      `{"eventId":"${'x'.repeat(5_000_000)}"}`, // one 5 MB line: reported by its length, never held whole
    ];
    writeFileSync(file, lines.join('\n') + '\n');

    const result = await runExpctl(['produce', 'exposures', '--file', file], { env: { ...process.env, ...pipeline.env, LOG_LEVEL: 'warn' }, timeoutMs: 60_000 });
    expect(result.status, result.stderr).toBe(1);
    expect(result.stderr).toContain(`${file}:11: not JSON`);
    expect(result.stderr).toContain(`${file}:12: unknown field(s) userID`);
    expect(result.stderr).toContain(`${file}:14: eventTime: expected epoch milliseconds or an ISO-8601 time`);
    expect(result.stderr).toContain(`${file}:15: experimentId is empty`);
    expect(result.stderr).toContain(`${file}:56: line too long: at most 65536 characters (got 5000014)`);
    expect(result.stderr).toMatch(/sent 50 exposures in .*; 5 bad line\(s\) of 56/);

    // expctl has exited: what it sent is all there is.
    const records = await readTopic(pipeline.kafka, pipeline.topics.exposuresRaw);
    expect(records).toHaveLength(50);
    for (const { message } of records) {
      const framed = unframe(message.value);
      if (!framed.ok) throw new Error('not framed');
      const event = eventSchemas().exposure.fromBuffer(framed.body) as { userId: string };
      expect(message.key!.toString()).toBe(event.userId);
    }
  });

  it('refuses a missing file and an unknown kind with exit status 2', async () => {
    const run = (args: string[]) => runExpctl(['produce', ...args], { env: { ...process.env, ...testPipeline('cli-produce').env } });
    const missing = await run(['metrics', '--file', '/nonexistent.jsonl']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('no such file: /nonexistent.jsonl');
    const kind = await run(['clicks', '--file', '/dev/null']);
    expect(kind.status).toBe(2);
    expect(kind.stderr).toContain("unknown kind 'clicks'");
  });
});
