import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDefinition } from '../../services/common/experimentDefinition.ts';
import { gaussian, seededRandom } from '../../services/common/random.ts';
import { consumerGroup } from '../../services/common/topics.ts';
import { fmt } from '../../services/cli/commands/results.ts';
import { ARTIFACTS, launchChromium } from '../support/browser.ts';
import { spawnService, waitUntilCaughtUp, type ChildService } from '../support/childService.ts';
import { testPipeline } from '../support/pipeline.ts';
import { waitFor } from '../support/waitFor.ts';

/**
 * The results page in a real browser (headless Chromium) against the real stack: control with
 * its admin API, ingest, aggregate and guard as child processes on the test broker.
 */
const USERS = 1_000;
const WAVES = 4;

/** What page functions (run in the browser) use of it; the project's types have no DOM. */
type InPage = { document: { querySelector(selector: string): { textContent: string | null } | null } };

interface Results {
  status: string | null;
  users: number;
  variants: { variantId: string; users: number; metrics: { metric: string; mean: number | null; interval95: [number, number] | null; counts: { users: number; sum: number; events: number }; versusControl: { difference: number; alwaysValid: { lower: number; upper: number } | null } | null }[] }[];
}

describe('the results page', () => {
  const pipeline = testPipeline('results-page', { principals: { guardian: ['guardian'], alice: ['operator'], carol: ['analyst'], 'admin-api': ['operator'] }, tokens: ['alice', 'carol'] });
  const env = { ...pipeline.env, GUARD_KEY_FILE: pipeline.fixture.keyFile('guardian'), ADMIN_API_KEY_FILE: pipeline.fixture.keyFile('admin-api'), ADMIN_API_PORT: '0', KAFKA_SESSION_TIMEOUT_MS: '6000' };
  const services: ChildService[] = [];
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  it('shows the API numbers, updates live when the guard halts, and lets an operator (not an analyst) halt', async () => {
    const definition = (id: string) => parseDefinition({
      id, name: `${id} <b>test</b>`, hypothesis: 'h', owner: 'test',
      variants: [{ id: 'control', weight: 0.5 }, { id: 'treatment', weight: 0.5 }],
      primaryMetrics: [{ name: 'orders', type: 'conversion' }],
      guardrailMetrics: [{ name: 'latency', type: 'sum', harmfulDirection: 'increase', tolerance: { kind: 'relative', value: 0.05 } }],
      minimumSampleSize: 200, plannedSampleSize: USERS,
    }, id);
    services.push(spawnService('services/control/main.ts', env));
    await services[0]!.started;
    const api = /"url":"(http:\/\/[^"]+)","msg":"admin API listening"/.exec(services[0]!.log())![1]!;
    await pipeline.defineThroughControl(['slow-checkout', 'healthy'].map(definition));
    for (const service of ['ingest', 'aggregate', 'guard']) services.push(spawnService(`services/${service}/main.ts`, env));
    await Promise.all(services.map((s) => s.started));
    const caughtUp = async () => {
      await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw, pipeline.topics.metricsRaw]);
      await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'aggregate'), [pipeline.topics.events]);
      await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'guard'), [pipeline.topics.aggregates]);
    };

    // Traffic in waves (each one a few points on the charts): exposures for both experiments,
    // then, once ingest has passed them on, healthy's latency; slow-checkout's comes later.
    const producer = await pipeline.producer();
    const random = seededRandom(7);
    const now = Date.now();
    const variantOf = (u: number) => (random() < 0.5 ? 'treatment' : 'control');
    const assigned = new Map<string, string>();
    for (let wave = 0; wave < WAVES; wave++) {
      const users = Array.from({ length: USERS / WAVES }, (_, i) => wave * (USERS / WAVES) + i);
      await Promise.all(users.flatMap((u) => ['slow-checkout', 'healthy'].map((experimentId) => {
        const variantId = variantOf(u);
        assigned.set(`${experimentId}/${u}`, variantId);
        return producer.sendExposure({ eventId: `x-${experimentId}-${u}`, experimentId, variantId, userId: `${experimentId}-${u}`, eventTime: now, context: null });
      })));
      await waitUntilCaughtUp(pipeline.kafka, consumerGroup(pipeline.prefix, 'ingest'), [pipeline.topics.exposuresRaw, pipeline.topics.metricsRaw]);
      await Promise.all(users.map((u) => producer.sendMetric({ eventId: `l-healthy-${u}`, userId: `healthy-${u}`, metric: 'latency', value: 200 + 40 * gaussian(random), eventTime: now + 1 })));
      await Promise.all(users.filter((u) => u % 4 === 0).map((u) => producer.sendMetric({ eventId: `o-healthy-${u}`, userId: `healthy-${u}`, metric: 'orders', value: 1, eventTime: now + 1 })));
      await caughtUp();
    }

    const apiGet = async <T,>(path: string, token = pipeline.fixture.tokens.carol!) => (await (await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${token}` } })).json()) as T;
    await waitFor(async () => (await apiGet<Results>('/experiments/healthy/results')).users === USERS && (await apiGet<Results>('/experiments/slow-checkout/results')).users === USERS, { timeoutMs: 30_000, message: () => 'the API did not show every user' });

    browser = await launchChromium();
    // --- the operator's page ---
    const operator = await (await browser.createBrowserContext()).newPage();
    await signIn(operator, `${api}/#slow-checkout`, pipeline.fixture.tokens.alice!);
    await expectNumbersOf(operator, 'slow-checkout', () => apiGet<Results>('/experiments/slow-checkout/results'));
    expect(await text(operator, 'exp-status')).toBe('RUNNING');
    expect(await operator.$eval('#command', (f) => (f as unknown as { hidden: boolean }).hidden)).toBe(false);
    // A marker that a reload would lose: the halt must show without one.
    await operator.evaluate(() => void ((globalThis as unknown as { marker: number }).marker = 42));

    // slow-checkout's treatment is 30 % slower: the guard halts it while the page is open.
    for (let wave = 0; wave < 3; wave++) {
      await Promise.all(Array.from({ length: USERS / 3 }, (_, i) => wave * Math.floor(USERS / 3) + i).map((u) => {
        const slow = assigned.get(`slow-checkout/${u}`) === 'treatment' ? 1.3 : 1;
        return producer.sendMetric({ eventId: `l-slow-${u}`, userId: `slow-checkout-${u}`, metric: 'latency', value: (200 + 40 * gaussian(random)) * slow, eventTime: now + 1 });
      }));
      await caughtUp();
    }
    await producer.close();
    await operator.waitForFunction(() => (globalThis as unknown as InPage).document.querySelector('[data-testid="exp-status"]')?.textContent === 'HALTED', { timeout: 30_000 });
    await operator.waitForSelector('tr[data-anomaly="GUARDRAIL_REGRESSION"]', { timeout: 10_000 });
    expect(await operator.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    expect(await text(operator, 'exp-since')).toMatch(/^HALTED since .* by guardian: /);
    // The guardrail's chart and the audit trail show the halt; the anomaly row shows the evidence.
    await operator.waitForSelector('[data-chart="guardrail:latency:treatment"] canvas');
    await operator.waitForSelector('tr[data-audit="HALT"]');
    expect(await operator.$eval('tr[data-anomaly="GUARDRAIL_REGRESSION"] pre', (p) => p.textContent)).toContain('"tolerance"');
    await expectNumbersOf(operator, 'slow-checkout', () => apiGet<Results>('/experiments/slow-checkout/results'));
    await operator.screenshot({ path: join(ARTIFACTS, 'results-page-halted.png'), fullPage: true });

    // --- the operator halts healthy from the page, with a reason that is markup ---
    await operator.click('tr[data-experiment="healthy"]');
    await operator.waitForFunction(() => (globalThis as unknown as InPage).document.querySelector('[data-testid="exp-title"]')?.textContent === 'healthy' && (globalThis as unknown as InPage).document.querySelector('[data-testid="exp-status"]')?.textContent === 'RUNNING');
    const reason = '<img src=x onerror="window.injected=1">load test';
    await operator.type('#command-reason', reason);
    await operator.click('#halt');
    await operator.waitForFunction(() => (globalThis as unknown as InPage).document.querySelector('[data-testid="exp-status"]')?.textContent === 'HALTED', { timeout: 20_000 });
    const healthy = await apiGet<Results & { statusDetail: { by: string; reason: string } }>('/experiments/healthy/results');
    expect(healthy.status).toBe('HALTED');
    expect(healthy.statusDetail.by).toBe('admin-api');
    expect(healthy.statusDetail.reason).toBe(`${reason} (requested by alice via the admin API)`);
    await operator.waitForFunction((r) => (globalThis as unknown as InPage).document.querySelector('[data-testid="exp-since"]')?.textContent?.includes(r), {}, reason);
    expect(await operator.evaluate(() => (globalThis as unknown as { injected?: number }).injected)).toBeUndefined();
    expect(await operator.$$('#detail img')).toHaveLength(0);

    // --- the analyst's page: the same numbers, no halt button ---
    const analyst = await (await browser.createBrowserContext()).newPage();
    await analyst.setViewport({ width: 1280, height: 800 });
    await signIn(analyst, `${api}/#healthy`, pipeline.fixture.tokens.carol!);
    await expectNumbersOf(analyst, 'healthy', () => apiGet<Results>('/experiments/healthy/results'));
    expect(await analyst.$eval('#command', (f) => (f as unknown as { hidden: boolean }).hidden)).toBe(true);
    expect(await analyst.$eval('#halt', (b) => (b as unknown as { offsetParent: unknown }).offsetParent)).toBeNull();
    // Readable at a laptop's width: nothing wider than the window but the tables' own scrollers.
    expect(await analyst.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number }).document.documentElement.scrollWidth <= (globalThis as unknown as { innerWidth: number }).innerWidth)).toBe(true);
    await analyst.screenshot({ path: join(ARTIFACTS, 'results-page-analyst.png'), fullPage: true });
    // The experiment's name is markup too: shown as text nowhere as elements.
    expect(await analyst.$$('#app b')).toHaveLength(0);
  }, 180_000);
});

async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('#token', { visible: true });
  await page.type('#token', token);
  await page.click('#login button[type="submit"]');
  await page.waitForSelector('#detail:not([hidden])', { timeout: 15_000 });
}

async function text(page: Page, testid: string): Promise<string | null> {
  return page.$eval(`[data-testid="${testid}"]`, (e) => e.textContent);
}

/**
 * The page shows exactly the API's numbers (printed as both print them). The page polls the
 * API, so the two are compared until they show the same snapshot (the API's reader of
 * exp.aggregates may still be applying the last deltas when the check begins).
 */
async function expectNumbersOf(page: Page, experimentId: string, fromApi: () => Promise<Results>): Promise<void> {
  let expected: Record<string, string> = {};
  let shown: Record<string, string | null> = {};
  await waitFor(async () => {
    expected = expectedCells(await fromApi());
    shown = await page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, (globalThis as unknown as InPage).document.querySelector(`[data-testid="${(globalThis as unknown as { CSS: { escape(s: string): string } }).CSS.escape(id)}"]`)?.textContent ?? null])), Object.keys(expected));
    return (await text(page, 'exp-title')) === experimentId && Object.entries(expected).every(([k, v]) => shown[k] === v);
  }, { timeoutMs: 15_000, intervalMs: 250, message: () => `the page shows ${JSON.stringify(shown)}, the API ${JSON.stringify(expected)}` });
  expect(Object.keys(expected).length).toBeGreaterThan(8);
}

function expectedCells(results: Results): Record<string, string> {
  const expected: Record<string, string> = {};
  for (const v of results.variants) {
    expected[`users:${v.variantId}`] = fmt(v.users);
    for (const m of v.metrics) {
      const key = `${m.metric}:${v.variantId}`;
      expected[`m-users:${key}`] = fmt(m.counts.users);
      expected[`m-sum:${key}`] = fmt(m.counts.sum);
      expected[`m-events:${key}`] = fmt(m.counts.events);
      expected[`m-mean:${key}`] = fmt(m.mean);
      expected[`m-ci:${key}`] = m.interval95 ? `[${fmt(m.interval95[0])}, ${fmt(m.interval95[1])}]` : '–';
      expected[`m-diff:${key}`] = fmt(m.versusControl?.difference);
      const av = m.versusControl?.alwaysValid;
      expected[`m-av:${key}`] = av ? `[${fmt(av.lower)}, ${fmt(av.upper)}]` : '–';
    }
  }
  return expected;
}
