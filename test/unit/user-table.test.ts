import { describe, expect, it } from 'vitest';
import { releaseHeld } from '../../services/aggregate/applyEvent.ts';
import { InternedIds, internedIds } from '../../services/aggregate/internedIds.ts';
import { decodeCompact, decodeUserState, encodeUserState, FORMAT_BINARY, Scratch } from '../../services/aggregate/userStateCodec.ts';
import { encodeJsonUserState, type UserState } from '../../services/aggregate/userState.ts';
import { UserTable } from '../../services/aggregate/userTable.ts';
import { randomBytes, randomInt, seededRandom } from '../support/random.ts';
import { referenceDecodeCompact } from '../support/referenceUserStateDecoder.ts';
import { loadRecord } from '../support/restoreRecord.ts';

const t0 = Date.UTC(2026, 10, 27);

/** A user with what the rules can leave: several experiments, conflicts, ratio denominators, held events in event-time order. */
function randomUser(random: () => number, held = randomInt(random, 6)): UserState {
  const state: UserState = { assignments: {}, totals: {}, held: [], newest: t0 + randomInt(random, 1_000_000) };
  for (let e = 0; e < randomInt(random, 4); e++) {
    const experiment = `exp-${randomInt(random, 5)}`;
    state.assignments[experiment] = { variant: ['control', 'treatment', 'v-ü'][randomInt(random, 3)]!, exposedAt: t0 + randomInt(random, 100_000), conflicted: random() < 0.3 };
    state.totals[`${experiment}\u0000revenue`] = (random() - 0.3) * 1e6;
    if (random() < 0.5) state.totals[`${experiment}\u0000errors_per_request\u0000y`] = randomInt(random, 50);
  }
  let time = t0;
  for (let h = 0; h < held; h++) state.held.push([['revenue', 'errors', 'requests'][randomInt(random, 3)]!, random() < 0.2 ? 0 : (random() - 0.5) * 1e3, (time += randomInt(random, 5_000))]);
  return state;
}

describe('the aggregator changelog record', () => {
  it('round-trips every field exactly in format 2 (binary, first byte 2)', () => {
    const random = seededRandom(5);
    for (let i = 0; i < 2_000; i++) {
      const state = randomUser(random);
      const encoded = encodeUserState(state);
      expect(encoded[0]).toBe(FORMAT_BINARY);
      expect(decodeUserState(encoded)).toEqual(state);
    }
    // Extremes the rules allow: the largest finite totals, negative and fractional values.
    const extreme: UserState = { assignments: { e: { variant: 'v', exposedAt: 0, conflicted: true } }, totals: { 'e\u0000m': 1e154, 'e\u0000m\u0000y': -Number.MIN_VALUE }, held: [['m', -1e12, -5]], newest: Number.MAX_SAFE_INTEGER };
    expect(decodeUserState(encodeUserState(extreme))).toEqual(extreme);
  });

  it('round-trips users with more strings and references than its reused tables first hold, and small users after them', () => {
    const random = seededRandom(15);
    const wide: UserState = { assignments: {}, totals: {}, held: [], newest: t0 };
    for (let e = 0; e < 150; e++) {
      wide.assignments[`exp-wide-${e}`] = { variant: `variant-${e % 7}`, exposedAt: t0 + e, conflicted: e % 5 === 0 };
      wide.totals[`exp-wide-${e}\u0000metric-${e}`] = e * 1.5;
    }
    for (let h = 0; h < 400; h++) wide.held.push([`held-metric-${h % 90}`, h, t0 + h]);
    for (let i = 0; i < 3; i++) {
      expect(decodeUserState(encodeUserState(wide))).toEqual(wide);
      const small = randomUser(random);
      expect(decodeUserState(encodeUserState(small))).toEqual(small);
    }
  });

  it('still reads format 1 (JSON) records, the current form and the older ones, to the same state', () => {
    const random = seededRandom(6);
    for (let i = 0; i < 500; i++) {
      const state = randomUser(random);
      expect(decodeUserState(encodeJsonUserState(state))).toEqual(state);
    }
    const beforeHeld = Buffer.from(JSON.stringify([{ 'exp-checkout': ['control', t0, 1] }, { 'exp-checkout\u0000revenue': 5 }]));
    expect(decodeUserState(beforeHeld)).toEqual({ assignments: { 'exp-checkout': { variant: 'control', exposedAt: t0, conflicted: true } }, totals: { 'exp-checkout\u0000revenue': 5 }, held: [], newest: 0 });
    // Step 11 kept early metrics in arrival order: read back in event-time order.
    const step11 = Buffer.from(JSON.stringify([{}, {}, [['revenue', 2, t0 + 5], ['revenue', 3, t0]], t0 + 5]));
    expect(decodeUserState(step11)).toEqual({ assignments: {}, totals: {}, held: [['revenue', 3, t0], ['revenue', 2, t0 + 5]], newest: t0 + 5 });
  });

  it('decodes as the previous decoder did, records lying anywhere in a larger buffer (as in a fetch response) and in runs that share strings', () => {
    const random = seededRandom(9);
    const records = Array.from({ length: 3_000 }, () => encodeUserState(randomUser(random)));
    // One buffer of all records at odd offsets, with random bytes between them: the decoder must
    // read within its record's slice (byteOffset unaligned) and nothing after it.
    const slices: Buffer[] = [];
    const parts: Buffer[] = [];
    let at = 0;
    for (const record of records) {
      const gap = randomBytes(random, 1 + randomInt(random, 7));
      parts.push(gap, record);
      slices.push(Buffer.alloc(0)); // filled below, once the buffer exists
      at += gap.length + record.length;
    }
    const all = Buffer.concat(parts, at);
    at = 0;
    for (let r = 0; r < records.length; r++) {
      at += parts[2 * r]!.length;
      slices[r] = all.subarray(at, at + records[r]!.length);
      at += records[r]!.length;
    }
    const [scratch, reference] = [new Scratch(), new Scratch()];
    for (const slice of slices) {
      const length = decodeCompact(slice, scratch);
      expect(length).toBe(referenceDecodeCompact(slice, reference));
      expect(scratch.data.subarray(0, length)).toEqual(reference.data.subarray(0, length));
    }
  });

  it('reads the right strings where records in a row carry look-alike strings in changing places (the decoder\'s cache of recent ids guesses by a few bytes)', () => {
    // Same length, same first, middle and last bytes: the same guess for all of them.
    const experiments = ['exp-aXc-1\u0000revenue', 'exp-aXc-2\u0000revenue', 'exp-aXc-3\u0000revenue'].map((key) => key.split('\u0000')[0]!);
    const random = seededRandom(12);
    const [scratch, reference] = [new Scratch(), new Scratch()];
    for (let r = 0; r < 2_000; r++) {
      const state: UserState = { assignments: {}, totals: {}, held: [], newest: r };
      for (const experiment of experiments) {
        if (random() < 0.4) continue;
        state.assignments[experiment] = { variant: random() < 0.5 ? 'v-1' : 'v-2', exposedAt: r, conflicted: false };
        state.totals[`${experiment}\u0000revenue`] = r;
      }
      if (random() < 0.5) state.held.push([random() < 0.5 ? 'm-1' : 'm-2', 1, r]);
      const record = encodeUserState(state);
      const length = decodeCompact(record, scratch);
      expect(length).toBe(referenceDecodeCompact(record, reference));
      expect(scratch.data.subarray(0, length)).toEqual(reference.data.subarray(0, length));
      expect(decodeUserState(record)).toEqual(state);
    }
  });

  it('refuses every truncation of a record, as the previous decoder did, without reading past the slice', () => {
    const random = seededRandom(10);
    for (let r = 0; r < 50; r++) {
      const record = encodeUserState(randomUser(random, randomInt(random, 4)));
      // The record followed by more bytes of itself: a truncated slice sits before readable bytes.
      const padded = Buffer.concat([record, record]);
      for (let end = 1; end < record.length; end++) {
        expect(() => decodeCompact(padded.subarray(0, end), new Scratch())).toThrow();
        expect(() => referenceDecodeCompact(padded.subarray(0, end), new Scratch())).toThrow();
      }
    }
  });

  it('finds interned ids by their bytes through its hash table, many ids and colliding slots included', () => {
    const ids = new InternedIds();
    const values = Array.from({ length: 5_000 }, (_, i) => (i % 3 === 0 ? `exp-${i}\u0000revenue` : `v-ü-${i}`));
    values.forEach((value, i) => expect(ids.idOf(value)).toBe(i));
    for (const [i, value] of values.entries()) {
      const bytes = Buffer.concat([Buffer.from('xy'), Buffer.from(value, 'utf8'), Buffer.from('z')]);
      expect(ids.idOfBytes(bytes, 2, bytes.length - 1)).toBe(i);
    }
    // An unknown string is given the next id, then found.
    const fresh = Buffer.from('not-yet-seen');
    expect(ids.idOfBytes(fresh, 0, fresh.length)).toBe(values.length);
    expect(ids.stringOf(values.length)).toBe('not-yet-seen');
    expect(ids.idOfBytes(fresh, 0, fresh.length)).toBe(values.length);
  });

  it('refuses a record of an unknown format or a truncated one', () => {
    expect(() => decodeUserState(Buffer.from([7, 1, 2]))).toThrow(/unknown user state format 7/);
    const encoded = encodeUserState(randomUser(seededRandom(1), 3));
    expect(() => decodeUserState(encoded.subarray(0, encoded.length - 1))).toThrow();
  });
});

describe('UserTable', () => {
  it('holds what a Map of UserState would, through batches, size changes, deletes, flushes and restores', () => {
    const random = seededRandom(7);
    const reference = new Map<string, UserState>();
    let table = new UserTable();
    const keys = Array.from({ length: 30_000 }, (_, i) => (i % 7 === 0 ? `usér-${i}-✓` : `user-${i}`));
    for (let batch = 0; batch < 40; batch++) {
      for (let n = 0; n < 3_000; n++) {
        const key = keys[randomInt(random, keys.length)]!;
        if (random() < 0.03) {
          table.delete(key);
          reference.delete(key);
          continue;
        }
        const state = randomUser(random);
        table.set(key, state);
        reference.set(key, structuredClone(state));
      }
      expect(table.size).toBe(reference.size);
      table.flush();
      if (batch % 10 === 9) {
        // As a restore: every key's changelog record into a fresh table.
        const restored = new UserTable();
        // Presized as a restore does (from offsets: more records than keys) once of the two times.
        if (batch === 9) restored.expect(3 * reference.size);
        for (const key of reference.keys()) loadRecord(restored, key, table.encoded(key));
        for (const key of keys.slice(0, 100)) if (!reference.has(key)) loadRecord(restored, key, null);
        table = restored;
      }
    }
    expect(table.size).toBe(reference.size);
    for (const key of keys) expect(table.get(key), key).toEqual(reference.get(key));
    expect(new Map(table.entries())).toEqual(reference);
    for (const key of keys) expect(table.encoded(key) === null).toBe(!reference.has(key));
  });

  it('keeps a user whose record is larger than a chunk, and lets go of held events in place as releaseHeld does', () => {
    const random = seededRandom(8);
    const table = new UserTable();
    const heavy = randomUser(random, 50_000);
    table.set('heavy', heavy);
    const others = Array.from({ length: 2_000 }, () => randomUser(random, 20));
    others.forEach((state, i) => table.set(`u${i}`, state));
    table.flush();
    const reference = structuredClone(heavy);
    const watermark = reference.held[30_000]![2];
    const released = releaseHeld(reference, watermark);
    expect(table.releaseHeld(table.numberOf('heavy'), watermark)).toEqual({ released, earliestHeld: reference.held[0]![2] });
    // The changelog value encoded at the flush is not served once the record changed in place.
    expect(decodeUserState(table.encoded('heavy')!)).toEqual(reference);
    // A value encoded at the flush (the first call) and one read back from the table (the second) are the same bytes.
    expect(table.encoded('u1')).toEqual(table.encoded('u1'));
    expect(table.get('heavy')).toEqual(reference);
    others.forEach((state, i) => expect(table.get(`u${i}`)).toEqual(state));
    // Numbers are stable while stored; an unknown user has none.
    expect(table.numberOf('heavy')).toBe(0);
    expect(table.numberOf('nobody')).toBe(-1);
    let visited = 0;
    table.forEachUser((number, newest, held) => {
      visited++;
      if (number === 0) expect([newest, held]).toEqual([reference.newest, reference.held.length]);
    });
    expect(visited).toBe(2_001);
  });

  it('hands its storage over in parts (as a restore thread does) and renumbers its interned ids, every field kept', () => {
    const random = seededRandom(31);
    const built = new UserTable();
    const expected = new Map<string, UserState>();
    for (let i = 0; i < 3_000; i++) {
      const key = `user-${randomInt(random, 2_000)}`;
      if (random() < 0.1) {
        loadRecord(built, key, null);
        expected.delete(key);
        continue;
      }
      const state = randomUser(random);
      loadRecord(built, key, encodeUserState(state));
      expected.set(key, state);
    }
    // Held events let go in place leave dead tails behind live records, which a walk over the chunks steps over.
    const watermark = t0 + 6_000;
    for (const [key, state] of expected) {
      built.releaseHeld(built.numberOf(key), watermark);
      state.held = state.held.filter(([, , time]) => time >= watermark);
    }
    const parts = built.toParts();
    const transferables = UserTable.transferables(parts);
    // Every typed array of the table, none twice: nothing of it is copied when handed over.
    expect(new Set(transferables).size).toBe(transferables.length);
    expect(transferables.length).toBe(parts.chunks.filter(Boolean).length + 3);
    const table = UserTable.fromParts(structuredClone(parts));
    expect(table.size).toBe(expected.size);
    expect(new Map(table.entries())).toEqual(expected);
    // Renumbered as a restore thread's table is: each id to the id of another string (here the
    // same string renamed), so every field that holds an id shows whether it was rewritten.
    const renamed = (value: string) => `renamed:${value}`;
    const count = internedIds.all().length;
    const mapping = Int32Array.from({ length: count }, (_, id) => internedIds.idOf(renamed(internedIds.stringOf(id))));
    const renumbered = UserTable.fromParts(structuredClone(parts));
    renumbered.remapIds(mapping);
    const rename = (state: UserState): UserState => ({
      assignments: Object.fromEntries(Object.entries(state.assignments).map(([e, a]) => [renamed(e), { ...a, variant: renamed(a.variant) }])),
      totals: Object.fromEntries(Object.entries(state.totals).map(([k, v]) => [renamed(k), v])),
      held: state.held.map(([metric, value, time]) => [renamed(metric), value, time]),
      newest: state.newest,
    });
    expect(new Map(renumbered.entries())).toEqual(new Map([...expected].map(([key, state]) => [key, rename(state)])));
    expect(() => UserTable.fromParts(structuredClone(parts)).remapIds(new Int32Array(0))).toThrow(/no mapping/);
  });

  it('refuses parts that are not a user table', () => {
    const parts = new UserTable().toParts();
    expect(UserTable.fromParts(structuredClone(parts)).size).toBe(0);
    for (const broken of [
      { ...parts, slots: new Int32Array(3), hashes: new Int32Array(3) },
      { ...parts, handles: [1, 2] },
      { ...parts, stored: 5 },
      { ...parts, current: 4 },
      { ...parts, chunks: [new Uint8Array(8)], live: [0] },
      { ...parts, live: [1] },
      null,
    ]) {
      expect(() => UserTable.fromParts(broken as never)).toThrow(/not a user table/);
    }
  });
});
