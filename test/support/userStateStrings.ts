import type { UserState } from '../../services/aggregate/userState.ts';

/** Every string the given users' states hold (what a restore interns): experiment and variant ids, total keys, held metrics. */
export function userStateStrings(states: Iterable<UserState>): Set<string> {
  const strings = new Set<string>();
  for (const state of states) {
    for (const [experimentId, assignment] of Object.entries(state.assignments)) strings.add(experimentId).add(assignment.variant);
    for (const key of Object.keys(state.totals)) strings.add(key);
    for (const [metric] of state.held) strings.add(metric);
  }
  return strings;
}
