import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../services/common/config.ts';
import { isPipelineError } from '../../services/common/errors.ts';

function configError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(isPipelineError(err, 'CONFIG_INVALID') || isPipelineError(err, 'CONFIG_FILE_UNREADABLE')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected a configuration error');
}

function writeJson(value: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.json');
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

describe('loadConfig', () => {
  it('gives defaults with an empty environment: local stack, chDB under the stack dir', () => {
    const c = loadConfig({ env: {}, cwd: '/srv/app' });
    expect(c.kafka.brokers).toBeUndefined();
    expect(c.kafka.clientId).toBe('expstream');
    expect(c.kafka.topicPrefix).toBe('');
    expect(c.schemaRegistry.url).toBeUndefined();
    expect(c.clickhouse.url).toBeUndefined();
    expect(c.clickhouse.database).toBe('expstream');
    expect(c.stack.dir).toBe('/srv/app/.stack');
    expect(c.clickhouse.dataDir).toBe('/srv/app/.stack/chdb');
    expect(c.log.level).toBe('info');
  });

  it('reads the environment: broker list split on commas, URLs, levels', () => {
    const c = loadConfig({
      env: { KAFKA_BROKERS: 'k1:9092, k2:9093', SCHEMA_REGISTRY_URL: 'http://sr:8081', CLICKHOUSE_URL: 'https://ch:8443', EXP_TOPIC_PREFIX: 'staging.', LOG_LEVEL: 'debug' },
      cwd: '/x',
    });
    expect(c.kafka.brokers).toEqual(['k1:9092', 'k2:9093']);
    expect(c.schemaRegistry.url).toBe('http://sr:8081');
    expect(c.clickhouse.url).toBe('https://ch:8443');
    expect(c.kafka.topicPrefix).toBe('staging.');
    expect(c.log.level).toBe('debug');
  });

  it("reads the analysts' read-only ClickHouse user, absent by default", () => {
    const defaults = loadConfig({ env: {} }).clickhouse;
    expect(defaults.queryUser).toBeUndefined();
    expect(defaults.queryPassword).toBe('');
    const c = loadConfig({ env: { CLICKHOUSE_QUERY_USER: 'expstream_analyst', CLICKHOUSE_QUERY_PASSWORD: 'pw' } });
    expect(c.clickhouse).toMatchObject({ queryUser: 'expstream_analyst', queryPassword: 'pw', username: 'default' });
  });

  it("reads the guard's punctuation period, a minute by default, within its bounds", () => {
    expect(loadConfig({ env: {} }).guard.punctuateMs).toBe(60_000);
    expect(loadConfig({ env: { GUARD_PUNCTUATE_MS: '500' } }).guard.punctuateMs).toBe(500);
    expect(configError(() => loadConfig({ env: { GUARD_PUNCTUATE_MS: '50' } }))).toMatch(/guard\.punctuateMs \(from GUARD_PUNCTUATE_MS\)/);
    expect(configError(() => loadConfig({ env: { GUARD_PUNCTUATE_MS: 'soon' } }))).toMatch(/guard\.punctuateMs/);
  });

  it('lets the environment override the file, and the file override defaults', () => {
    const file = writeJson({ kafka: { brokers: ['file:1'], clientId: 'from-file' }, log: { level: 'warn' } });
    const c = loadConfig({ env: { KAFKA_BROKERS: 'env:2' }, file, cwd: '/x' });
    expect(c.kafka.brokers).toEqual(['env:2']);
    expect(c.kafka.clientId).toBe('from-file');
    expect(c.log.level).toBe('warn');
  });

  it('finds the file through EXP_CONFIG', () => {
    const file = writeJson({ clickhouse: { database: 'analytics' } });
    expect(loadConfig({ env: { EXP_CONFIG: file } }).clickhouse.database).toBe('analytics');
  });

  it('names the bad key and the variable it came from', () => {
    expect(configError(() => loadConfig({ env: { KAFKA_BROKERS: 'no-port' } }))).toMatch(/kafka\.brokers\.0 \(from KAFKA_BROKERS\): expected host:port/);
    expect(configError(() => loadConfig({ env: { SCHEMA_REGISTRY_URL: 'ftp://x' } }))).toMatch(/schemaRegistry\.url \(from SCHEMA_REGISTRY_URL\)/);
    expect(configError(() => loadConfig({ env: { LOG_LEVEL: 'loud' } }))).toMatch(/log\.level \(from LOG_LEVEL\)/);
    expect(configError(() => loadConfig({ env: { CLICKHOUSE_DATABASE: 'drop table' } }))).toMatch(/clickhouse\.database/);
    expect(configError(() => loadConfig({ env: { KAFKA_BROKERS: 'h:99999' } }))).toMatch(/port must be at most 65535/);
  });

  it('refuses unknown keys in the file, naming them and the file', () => {
    const file = writeJson({ kafka: { brokerz: ['a:1'] } });
    const message = configError(() => loadConfig({ env: {}, file }));
    expect(message).toContain('brokerz');
    expect(message).toContain(file);
  });

  it('reports an unreadable or malformed file clearly', () => {
    expect(configError(() => loadConfig({ env: {}, file: '/nonexistent/config.json' }))).toMatch(/cannot read config file/);
    expect(configError(() => loadConfig({ env: {}, file: writeJson('{ not json') }))).toMatch(/is not valid JSON/);
    expect(configError(() => loadConfig({ env: {}, file: writeJson('[1,2]') }))).toMatch(/top level must be an object/);
  });

  it('bounds metric values: 1e12 by default, INGEST_MAX_ABS_VALUE within (0, 1e15]', () => {
    expect(loadConfig({ env: {} }).ingest.maxAbsMetricValue).toBe(1e12);
    expect(loadConfig({ env: { INGEST_MAX_ABS_VALUE: '5e9' } }).ingest.maxAbsMetricValue).toBe(5e9);
    expect(loadConfig({ env: { INGEST_MAX_ABS_VALUE: '1e15' } }).ingest.maxAbsMetricValue).toBe(1e15);
    for (const bad of ['1e16', 'Infinity', '0', '-5', 'lots']) {
      expect(configError(() => loadConfig({ env: { INGEST_MAX_ABS_VALUE: bad } }))).toMatch(/ingest\.maxAbsMetricValue \(from INGEST_MAX_ABS_VALUE\)/);
    }
  });

  it('returns a frozen object', () => {
    const c = loadConfig({ env: { KAFKA_BROKERS: 'a:1' } });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.kafka.brokers)).toBe(true);
    expect(() => {
      (c.kafka as { clientId: string }).clientId = 'changed';
    }).toThrow(TypeError);
  });
});
