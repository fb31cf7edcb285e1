import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allMetrics, controlVariant, DEFINITION_LIMITS, parseDefinition, readDefinitionFile } from '../../services/common/experimentDefinition.ts';

const valid = {
  id: 'exp-1',
  name: 'Test',
  hypothesis: 'It helps',
  owner: 'team',
  variants: [{ id: 'a', weight: 0.5 }, { id: 'b', weight: 0.5 }],
  primaryMetrics: [{ name: 'revenue', type: 'sum' }],
  guardrailMetrics: [{ name: 'errors', type: 'conversion', harmfulDirection: 'increase', tolerance: { kind: 'absolute', value: 0.01 } }],
  plannedSampleSize: 1000,
};

function problems(value: unknown): string {
  try {
    parseDefinition(value, 'test.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  return 'accepted';
}

describe('experiment definitions', () => {
  it('accepts a complete definition and fills the defaults', () => {
    const d = parseDefinition(valid, 'x');
    expect(d).toMatchObject({ attributionWindowHours: 336, minimumSampleSize: 100 });
    // The decision levels come from the false-halt budget (services/common/guardPolicy.ts), not from defaults filled in here.
    expect(d.srmThreshold).toBeUndefined();
    expect(d.guardrailAlpha).toBeUndefined();
    expect(controlVariant(d)).toBe('a');
    expect(allMetrics(d)).toEqual([{ name: 'revenue', type: 'sum' }, { name: 'errors', type: 'conversion' }]);
  });

  it('names each bad field', () => {
    expect(problems({ ...valid, variants: [{ id: 'a', weight: 0.5 }, { id: 'b', weight: 0.6 }] })).toContain('variants: weights must sum to 1, they sum to 1.1');
    expect(problems({ ...valid, variants: [{ id: 'a', weight: 0.5 }, { id: 'a', weight: 0.5 }] })).toContain("variants.1.id: variant 'a' appears twice");
    expect(problems({ ...valid, variants: [{ id: 'a', weight: 1 }] })).toContain('variants');
    expect(problems({ ...valid, primaryMetrics: [{ name: 'revenue', type: 'average' }] })).toContain('primaryMetrics.0.type');
    expect(problems({ ...valid, guardrailMetrics: [{ ...valid.guardrailMetrics[0], harmfulDirection: 'up' }] })).toContain('guardrailMetrics.0.harmfulDirection');
    expect(problems({ ...valid, control: 'c' })).toContain("control: 'c' is not one of the variants (a, b)");
    expect(problems({ ...valid, minimumSampleSize: 5000 })).toContain('minimumSampleSize: must not exceed plannedSampleSize (1000)');
    expect(problems({ ...valid, srmTreshold: 0.01 })).toContain('unknown field(s) srmTreshold');
    const { owner: _owner, ...noOwner } = valid;
    expect(problems(noOwner)).toMatch(/owner: /);
    expect(problems({ ...valid, guardrailMetrics: [{ ...valid.guardrailMetrics[0], name: 'revenue' }] })).toContain("metric 'revenue' is defined twice");
  });

  it('reads YAML and JSON files, and says which file is wrong', () => {
    const example = readDefinitionFile(resolve(import.meta.dirname, '../../experiments/checkout-redesign.yaml'));
    expect(example.id).toBe('checkout-redesign');
    const dir = mkdtempSync(join(tmpdir(), 'defs-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify(valid));
    expect(readDefinitionFile(join(dir, 'a.json')).id).toBe('exp-1');
    writeFileSync(join(dir, 'bad.yaml'), 'id: [unclosed');
    expect(() => readDefinitionFile(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml: not valid YAML/);
    writeFileSync(join(dir, 'wrong.yaml'), 'id: x\nname: y\n');
    expect(() => readDefinitionFile(join(dir, 'wrong.yaml'))).toThrow(/wrong\.yaml: invalid experiment definition:[\s\S]*hypothesis/);
  });

  describe('hostile sizes: every list and string has a cap, checked at once', () => {
    const timed = (value: unknown) => {
      const started = performance.now();
      const message = problems(value);
      return { message, ms: performance.now() - started };
    };
    const variants = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `v${i}`, weight: 1 / n }));

    it('refuses 200,000 variants well under a second, naming the field and the cap', () => {
      const { message, ms } = timed({ ...valid, variants: variants(200_000) });
      expect(message).toContain(`variants: at most ${DEFINITION_LIMITS.variants} variants (got 200000)`);
      expect(ms).toBeLessThan(500);
    });

    it('finds duplicates in linear time (a Set, not a nested scan)', () => {
      // Within the cap the duplicate check is exact; over it the cap answers first.
      const dup = [...variants(DEFINITION_LIMITS.variants - 1), { id: 'v3', weight: 0.01 }];
      expect(problems({ ...valid, variants: dup })).toContain(`variants.${DEFINITION_LIMITS.variants - 1}.id: variant 'v3' appears twice`);
      const { message, ms } = timed({ ...valid, variants: Array.from({ length: 200_000 }, () => ({ id: 'same', weight: 0.5 })) });
      expect(message).toContain('variants: at most');
      expect(ms).toBeLessThan(500);
    });

    it.each([
      ['id', { id: 'x'.repeat(129) }, `id: at most ${DEFINITION_LIMITS.idLength} characters (got 129)`],
      ['a variant id', { variants: [{ id: 'a'.repeat(300), weight: 0.5 }, { id: 'b', weight: 0.5 }] }, 'variants.0.id: at most 128 characters (got 300)'],
      ['a metric name', { primaryMetrics: [{ name: 'm'.repeat(1_000_000), type: 'sum' }] }, 'primaryMetrics.0.name: at most 128 characters (got 1000000)'],
      ['name', { name: 'n'.repeat(201) }, `name: at most ${DEFINITION_LIMITS.nameLength} characters (got 201)`],
      ['owner', { owner: 'o'.repeat(5_000) }, `owner: at most ${DEFINITION_LIMITS.ownerLength} characters (got 5000)`],
      ['hypothesis', { hypothesis: 'h'.repeat(10_000_000) }, `hypothesis: at most ${DEFINITION_LIMITS.hypothesisLength} characters (got 10000000)`],
      ['primary metrics', { primaryMetrics: Array.from({ length: 100_000 }, (_, i) => ({ name: `m${i}`, type: 'sum' })) }, `primaryMetrics: at most ${DEFINITION_LIMITS.primaryMetrics} primary metrics (got 100000)`],
      ['guardrail metrics', { guardrailMetrics: Array.from({ length: 100_000 }, (_, i) => ({ ...valid.guardrailMetrics[0], name: `g${i}` })) }, `guardrailMetrics: at most ${DEFINITION_LIMITS.guardrailMetrics} guardrail metrics (got 100000)`],
    ])('caps %s', (_what, override, expected) => {
      const { message, ms } = timed({ ...valid, ...override });
      expect(message).toContain(expected);
      expect(ms).toBeLessThan(500);
    });

    it('lists at most 20 problems, then how many more', () => {
      const keys = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`junk${i}`, i]));
      const message = problems({ ...valid, ...keys, variants: [{ id: '-bad', weight: 2 }, { id: '-worse', weight: 2 }] });
      expect(message).toMatch(/unknown field\(s\) junk0, junk1, .* and 49990 more/);
      expect(message.split('\n').length).toBeLessThan(25);
    });

    it('refuses a definition file over the size cap before parsing it, also with 200,000 variants', () => {
      const dir = mkdtempSync(join(tmpdir(), 'defs-'));
      const yaml = join(dir, 'huge.yaml');
      writeFileSync(yaml, `id: huge\nvariants:\n${Array.from({ length: 200_000 }, (_, i) => `  - id: v${i}\n    weight: 0.000005\n`).join('')}`);
      const json = join(dir, 'huge.json');
      writeFileSync(json, JSON.stringify({ ...valid, variants: variants(200_000) }));
      for (const file of [yaml, json]) {
        const started = performance.now();
        expect(() => readDefinitionFile(file)).toThrow(`${file}: a definition file may be at most 64 KiB; this one is larger`);
        expect(performance.now() - started).toBeLessThan(500);
      }
      // Just under the file cap, many variants still fail fast on the list cap.
      const many = join(dir, 'many.json');
      writeFileSync(many, JSON.stringify({ ...valid, variants: variants(2_000) }));
      expect(readFileSync(many).length).toBeLessThan(DEFINITION_LIMITS.fileBytes);
      const started = performance.now();
      expect(() => readDefinitionFile(many)).toThrow('variants: at most 20 variants (got 2000)');
      expect(performance.now() - started).toBeLessThan(500);
    });
  });
});
