import { PipelineError } from './errors.ts';

/**
 * An experiment's lifecycle, as one transition table:
 *
 *   (new) ─DEFINE→ DRAFT ─START→ RUNNING ─HALT→ HALTED ─RESUME→ RUNNING
 *   RUNNING or HALTED ─CONCLUDE→ CONCLUDED ─ARCHIVE→ ARCHIVED;  DRAFT ─ARCHIVE→ ARCHIVED
 *
 * DEFINE also changes the definition of a draft, a running or a halted experiment (the
 * control service refuses changes that would invalidate a running one's statistics,
 * services/common/definitionChanges.ts); a concluded or archived experiment never changes.
 * A HALT of a halted experiment is accepted and changes nothing. Any other move is illegal:
 * `transition` throws, and the control service turns that into an audited rejection. Every
 * legal move is a signed command, an audit record and a record on exp.state.
 */
export const EXPERIMENT_STATES = ['DRAFT', 'RUNNING', 'HALTED', 'CONCLUDED', 'ARCHIVED'] as const;
export type ExperimentState = (typeof EXPERIMENT_STATES)[number];

export const LIFECYCLE_ACTIONS = ['DEFINE', 'START', 'HALT', 'RESUME', 'CONCLUDE', 'ARCHIVE'] as const;
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];

/** From a state (NEW: not known yet), the moves allowed and where each leads. */
export const TRANSITIONS: Readonly<Record<ExperimentState | 'NEW', Readonly<Partial<Record<LifecycleAction, ExperimentState>>>>> = {
  NEW: { DEFINE: 'DRAFT' },
  DRAFT: { DEFINE: 'DRAFT', START: 'RUNNING', ARCHIVE: 'ARCHIVED' },
  RUNNING: { DEFINE: 'RUNNING', HALT: 'HALTED', CONCLUDE: 'CONCLUDED' },
  HALTED: { DEFINE: 'HALTED', HALT: 'HALTED', RESUME: 'RUNNING', CONCLUDE: 'CONCLUDED' },
  CONCLUDED: { ARCHIVE: 'ARCHIVED' },
  ARCHIVED: {},
};

/** Rejection codes of illegal moves, as the audit log records them. */
export type IllegalMoveCode = 'UNKNOWN_EXPERIMENT' | 'NOT_HALTED' | 'ILLEGAL_TRANSITION';

/** Where the move leads; throws a PipelineError LIFECYCLE_ILLEGAL_MOVE (context: code, from, action) when the table has no such move. */
export function transition(experimentId: string, from: ExperimentState | undefined, action: LifecycleAction): ExperimentState {
  const state = from ?? 'NEW';
  const to = TRANSITIONS[state][action];
  if (to !== undefined) return to;
  const allowed = Object.keys(TRANSITIONS[state]).join(', ') || 'nothing';
  const [code, message]: [IllegalMoveCode, string] =
    state === 'NEW' ? ['UNKNOWN_EXPERIMENT', `${experimentId} is not known to the control plane; DEFINE it first`]
    : action === 'RESUME' ? ['NOT_HALTED', `${experimentId} is ${state}; only a halted experiment can be resumed`]
    : ['ILLEGAL_TRANSITION', `${experimentId} is ${state}: ${action} is not a move from ${state} (allowed: ${allowed})`];
  throw new PipelineError('LIFECYCLE_ILLEGAL_MOVE', message, { context: { code, experimentId, from: state, action } });
}

/** What the services need to know of an experiment's state to decide what counts. */
export interface LifecycleView {
  status: ExperimentState;
  concludedAt: number | null;
}

export type EnrollmentVerdict = { enrolls: true } | { enrolls: false; why: 'NOT_STARTED' | 'CONCLUDED' };

/**
 * Whether an exposure at `eventTime` enrolls its user. A running or halted experiment
 * enrolls (a halted one is still counted, for post-halt analysis); a draft, or one with no
 * state on exp.state, enrolls no one; a concluded or archived one only enrolls exposures that
 * happened before it was concluded (late arrivals of the running period), by event time.
 */
export function enrollment(state: LifecycleView | undefined, eventTime: number): EnrollmentVerdict {
  if (!state || state.status === 'DRAFT') return { enrolls: false, why: 'NOT_STARTED' };
  if (state.status === 'RUNNING' || state.status === 'HALTED') return { enrolls: true };
  return state.concludedAt !== null && eventTime < state.concludedAt ? { enrolls: true } : { enrolls: false, why: 'CONCLUDED' };
}

/** Whether a metric event at `eventTime` of an enrolled user still counts: not at or after the conclusion. */
export function countsAfterConclusion(state: LifecycleView | undefined, eventTime: number): boolean {
  const concludedAt = state?.concludedAt;
  return concludedAt === null || concludedAt === undefined || eventTime < concludedAt;
}

/** A conclusion's decision: ship a variant, ship nothing, or no decision either way. */
export function parseDecision(value: unknown, variants: readonly string[]): { ok: true; decision: string } | { ok: false; problem: string } {
  if (typeof value !== 'string') return { ok: false, problem: 'a conclusion needs a decision: ship:<variant>, no-ship or inconclusive' };
  if (value === 'no-ship' || value === 'inconclusive') return { ok: true, decision: value };
  const ship = /^ship:(.+)$/.exec(value);
  if (ship && variants.includes(ship[1]!)) return { ok: true, decision: value };
  return { ok: false, problem: `decision '${value.slice(0, 100)}' is not ship:<variant> (variants: ${variants.join(', ')}), no-ship or inconclusive` };
}
