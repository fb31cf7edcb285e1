/**
 * What the services did to heal themselves, read from their logs: every time a supervisor
 * replaced a loop or a topic reader (`... failed; starting a fresh one`), with its reason.
 * Not a check (healing is the point), but the first thing to read when recovery was slow:
 * a loop replaced again seconds after each start is not healing.
 */
export interface Replacement {
  at: number;
  /** `expstream.ingest loop` or `reader of exp.definitions`. */
  what: string;
  reason: string;
}

export interface HealingSummary {
  replacements: number;
  /** Reason (numbers blanked, so repeats group) -> how often. */
  reasons: Record<string, number>;
  /** Replacements that came within 5 s of the previous start of the same loop. */
  replacedRightAfterStart: number;
}

const MARKER = 'failed; starting a fresh one';

export function replacementsInLog(text: string): { replacements: Replacement[]; starts: { at: number; what: string }[] } {
  const replacements: Replacement[] = [];
  const starts: { at: number; what: string }[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(MARKER) && !line.includes('loop.running')) continue;
    let entry: { time?: number; msg?: string; err?: { message?: string } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const msg = entry.msg ?? '';
    if (msg.endsWith('loop.running')) starts.push({ at: entry.time ?? 0, what: msg.slice(0, -'.running'.length) });
    else if (msg.endsWith(MARKER)) replacements.push({ at: entry.time ?? 0, what: msg.slice(0, -MARKER.length).trim(), reason: entry.err?.message ?? '?' });
  }
  return { replacements, starts };
}

export function summarizeHealing(text: string): HealingSummary {
  const { replacements, starts } = replacementsInLog(text);
  const reasons: Record<string, number> = {};
  let replacedRightAfterStart = 0;
  for (const r of replacements) {
    const key = `${r.what}: ${r.reason.replace(/\d+/g, 'N').slice(0, 120)}`;
    reasons[key] = (reasons[key] ?? 0) + 1;
    const lastStart = starts.filter((s) => s.what === r.what && s.at <= r.at).at(-1);
    if (lastStart && r.at - lastStart.at < 5_000) replacedRightAfterStart++;
  }
  return { replacements: replacements.length, reasons, replacedRightAfterStart };
}
