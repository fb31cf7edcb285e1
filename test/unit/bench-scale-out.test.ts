import { describe, expect, it } from 'vitest';
import { assignmentTimes } from '../../bench/scaleOutBench.ts';

describe('bench scale out', () => {
  it("reads when each of a service's partition assignments happened from its pino log", () => {
    const log = [
      '{"level":30,"time":1000,"pid":1,"msg":"aggregate started"}',
      '{"level":30,"time":1200,"pid":1,"assigned":["t:0","t:1"],"msg":"partitions assigned"}',
      'not json',
      '{"level":30,"time":4100,"pid":1,"assigned":["t:0"],"msg":"partitions assigned"}',
      '',
    ].join('\n');
    expect(assignmentTimes(log)).toEqual([1200, 4100]);
  });
});
