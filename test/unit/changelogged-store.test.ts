import type { Kafka } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { ChangeloggedStore } from '../../services/common/changeloggedStore.ts';
import { isPipelineError } from '../../services/common/errors.ts';
import { createLogger } from '../../services/common/logger.ts';

const logger = createLogger({ level: 'silent', name: 'changelogged-store-test' });
const codec = { encode: (value: { n: number }) => Buffer.from(JSON.stringify(value)), decode: (buffer: Buffer) => JSON.parse(buffer.toString('utf8')) as { n: number } };

/** The pure parts only: restore (which reads a broker) is what assign() completes, and the integration tests cover it. */
function store(onDropped?: (partition: number) => void) {
  return new ChangeloggedStore({ kafka: {} as Kafka, changelogTopic: 'state.changelog', codec, logger, logEvent: 'test.restored', ...(onDropped ? { onDropped } : {}) });
}

const changelog = (s: ReturnType<typeof store>, partition: number) => s.takeChangelog(partition).map((r) => [r.topic, r.message.partition, r.message.key, r.message.value === null ? null : JSON.parse(String(r.message.value))]);

describe('ChangeloggedStore', () => {
  it('changelogs each key set since the last commit once, with its value at commit, to the input partition', () => {
    const s = store();
    s.assign(3, new Map([['old', { n: 0 }]]));
    const p = s.partition(3);
    const a = { n: 1 };
    p.set('a', a);
    p.set('b', { n: 2 });
    p.set('a', a);
    a.n = 5; // changed in place after set(): written as it is at commit
    expect(changelog(s, 3)).toEqual([['state.changelog', 3, 'a', { n: 5 }], ['state.changelog', 3, 'b', { n: 2 }]]);
    expect(p.get('a')).toEqual({ n: 5 });
    expect(p.size).toBe(3);
  });

  it('forgets what it took: a commit with nothing written yields nothing', () => {
    const s = store();
    s.assign(0);
    s.partition(0).set('a', { n: 1 });
    expect(s.takeChangelog(0)).toHaveLength(1);
    expect(s.takeChangelog(0)).toEqual([]);
  });

  it('reads do not make a key dirty', () => {
    const s = store();
    s.assign(0, new Map([['a', { n: 1 }]]));
    expect(s.partition(0).get('a')).toEqual({ n: 1 });
    expect(s.partition(0).get('missing')).toBeUndefined();
    expect(s.takeChangelog(0)).toEqual([]);
  });

  it('writes a tombstone for a deleted key, and the last write of a key wins', () => {
    const s = store();
    s.assign(1, new Map([['gone', { n: 1 }], ['back', { n: 2 }]]));
    const p = s.partition(1);
    p.delete('gone');
    p.set('new', { n: 3 });
    p.delete('new');
    p.delete('back');
    p.set('back', { n: 4 });
    expect(changelog(s, 1)).toEqual([['state.changelog', 1, 'gone', null], ['state.changelog', 1, 'new', null], ['state.changelog', 1, 'back', { n: 4 }]]);
    expect([...p.entries()]).toEqual([['back', { n: 4 }]]);
  });

  it('keeps partitions apart', () => {
    const s = store();
    s.assign(0);
    s.assign(1);
    s.partition(0).set('k', { n: 0 });
    s.partition(1).set('k', { n: 1 });
    expect(changelog(s, 1)).toEqual([['state.changelog', 1, 'k', { n: 1 }]]);
    expect(changelog(s, 0)).toEqual([['state.changelog', 0, 'k', { n: 0 }]]);
  });

  it('refuses a partition it does not own, and after a drop forgets its state and its unwritten keys', () => {
    const dropped: number[] = [];
    const s = store((p) => dropped.push(p));
    const notOwned = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return isPipelineError(err, 'STORE_PARTITION_NOT_OWNED');
      }
      return false;
    };
    expect(s.owns(2)).toBe(false);
    expect(notOwned(() => s.partition(2))).toBe(true);
    expect(notOwned(() => s.takeChangelog(2))).toBe(true);
    s.assign(2);
    s.partition(2).set('a', { n: 1 });
    s.drop(2);
    s.drop(2); // a partition not owned is ignored
    expect(dropped).toEqual([2]);
    expect(s.owns(2)).toBe(false);
    expect(notOwned(() => s.partition(2))).toBe(true);
    // Taken again (as a restore does): only what it is given, nothing left to write.
    s.assign(2, new Map([['b', { n: 2 }]]));
    expect(s.partition(2).get('a')).toBeUndefined();
    expect(s.takeChangelog(2)).toEqual([]);
  });
});
