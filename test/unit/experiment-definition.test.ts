import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allMetrics, controlVariant, parseDefinition, readDefinitionFile } from '../../services/common/experimentDefinition.ts';

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
    expect(d).toMatchObject({ srmThreshold: 0.001, attributionWindowHours: 336, minimumSampleSize: 100 });
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
});
