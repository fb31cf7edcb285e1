import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../services/common/random.ts';
import { pseudonymize, Pseudonymizer } from '../../services/sink/pseudonymizer.ts';

/** HMAC-SHA256 as Node computes it, written out here so that the test does not lean on the module's own reference. */
const expected = (userId: string, key: string) => createHmac('sha256', Buffer.from(key, 'utf8')).update(Buffer.from(userId, 'utf8')).digest('hex').slice(0, 32);

/** A string of `length` code units drawn from ASCII, Latin-1, the BMP, astral pairs and lone surrogates. */
function randomString(random: () => number, length: number): string {
  let s = '';
  while (s.length < length) {
    const pick = random();
    if (pick < 0.5) s += String.fromCharCode(0x20 + Math.floor(random() * 95));
    else if (pick < 0.65) s += String.fromCharCode(0xa0 + Math.floor(random() * 0x60));
    else if (pick < 0.8) s += String.fromCharCode(0x800 + Math.floor(random() * 0xd000));
    else if (pick < 0.95) s += String.fromCodePoint(0x10000 + Math.floor(random() * 0xfffff));
    else s += String.fromCharCode(0xd800 + Math.floor(random() * 0x800));
  }
  return s;
}

describe('Pseudonymizer (the sink\'s HMAC of user ids)', () => {
  // ASCII keys of at most a block take the string path for the inner hash; longer keys (hashed
  // first) and keys with other characters take the buffer path.
  it('gives exactly the HMAC-SHA256 pseudonym for keys shorter than, equal to and longer than a block, and ids of every length and script', () => {
    const random = seededRandom(20261128);
    const keys = ['k'.repeat(16), 'x'.repeat(63), 'y'.repeat(64), 'z'.repeat(65), 'a long key '.repeat(30), randomString(random, 40), 'ключ-🔑-'.repeat(9)];
    let checked = 0;
    for (const key of keys) {
      const pseudonyms = new Pseudonymizer(key);
      const ids = ['', 'u', 'user-1', 'x'.repeat(255), 'x'.repeat(256), 'y'.repeat(5_000), '\ud800', 'a\udc00b', ...Array.from({ length: 300 }, () => randomString(random, Math.floor(random() * 120)))];
      for (const id of ids) {
        expect(pseudonyms.of(id), `key of ${key.length} units, id ${JSON.stringify(id).slice(0, 40)}`).toBe(expected(id, key));
        checked++;
      }
    }
    expect(checked).toBe(keys.length * 308);
  });

  it('keeps giving the right pseudonym after a long id grew its buffer (no bytes of the longer id left behind)', () => {
    const pseudonyms = new Pseudonymizer('bench-pseudonym-key-0123456789');
    const sequence = ['short', 'é'.repeat(2_000), 'short', 'mid-length-user-id', '', '🙂'.repeat(700), 'short'];
    for (const id of sequence) expect(pseudonyms.of(id)).toBe(expected(id, 'bench-pseudonym-key-0123456789'));
  });

  it('agrees with the reference function, which keeps its 32 hex digits', () => {
    const key = 'bench-pseudonym-key-0123456789';
    expect(pseudonymize('user-42', key)).toBe(expected('user-42', key));
    expect(new Pseudonymizer(key).of('user-42')).toMatch(/^[0-9a-f]{32}$/);
  });
});
