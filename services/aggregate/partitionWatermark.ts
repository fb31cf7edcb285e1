import type { PartitionStore } from '../common/changeloggedStore.ts';
import type { PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import { releaseHeld, type Outcome } from './applyEvent.ts';
import { emptyUserState, type UserState } from './userState.ts';

const MINUTE = 60_000;

/**
 * One input partition's event-time clock and what it holds because of it.
 *
 * Stream time is the newest event time the aggregator has taken on the partition; the
 * watermark trails it by the lateness. An event behind the watermark is late: not taken, but
 * counted and reported. Both follow from the partition's records in offset order, so a replay
 * after a crash decides the same; after a restore, stream time is the largest `newest` of the
 * restored users (each taken event raised its user's).
 *
 * Held metric events are let go when their user is next touched, and, so that memory stays
 * bounded by the lateness rather than by how many users were ever seen, by a sweep after each
 * batch over an index of users by the minute of their held events. Letting go changes no
 * number (the rules never reach behind the watermark), so the sweep does not changelog: a
 * restored user may bring back events already let go, which go again on the next sweep.
 */
export class PartitionWatermark {
  private streamTime = Number.NEGATIVE_INFINITY;
  /** Users with held metric events, by the minute of their earliest held event's time. */
  private readonly byMinute = new Map<number, Set<string>>();
  /** Metric events held on the partition (a gauge: the cost of the lateness). */
  held = 0;

  constructor(private readonly latenessMs: number) {}

  /** Rebuilds the clock and the index from a partition's users (after a restore, or on first use). */
  static fromState(latenessMs: number, users: PartitionStore<UserState>): PartitionWatermark {
    const clock = new PartitionWatermark(latenessMs);
    for (const [userId, user] of users.entries()) {
      clock.streamTime = Math.max(clock.streamTime, user.newest);
      clock.held += user.held.length;
      clock.index(userId, user);
    }
    return clock;
  }

  get watermark(): number {
    return this.streamTime - this.latenessMs;
  }

  /** Whether an event of this event time is behind the watermark (late, not taken). */
  isLate(eventTime: number): boolean {
    return eventTime < this.watermark;
  }

  /** Moves stream time to a taken event's time, if newer. */
  advance(eventTime: number): void {
    if (eventTime > this.streamTime) this.streamTime = eventTime;
  }

  /**
   * Takes one event on the partition, as the aggregator does: 'late' (not taken, nothing
   * changes) if it is behind the watermark; otherwise stream time moves on, the user's state
   * is set (so changelogged at commit; `apply` changes it in place) and `apply` is given the
   * watermark that includes the event.
   */
  take(users: PartitionStore<UserState>, event: PipelineEvent, apply: (user: UserState, watermark: number) => Outcome[]): Outcome[] | 'late' {
    if (this.isLate(event.eventTime)) return 'late';
    this.advance(event.eventTime);
    const user = users.get(event.userId) ?? emptyUserState();
    users.set(event.userId, user);
    const before = user.held.length;
    const outcomes = apply(user, this.watermark);
    this.held += user.held.length - before;
    this.index(event.userId, user);
    return outcomes;
  }

  /** Lets go of every held event behind the watermark, user by user, through the index. */
  sweep(users: PartitionStore<UserState>): number {
    const watermark = this.watermark;
    let released = 0;
    for (const [minute, userIds] of this.byMinute) {
      // An event of this minute may still be at or after the watermark until the minute is wholly behind it.
      if (minute + MINUTE > watermark) continue;
      this.byMinute.delete(minute);
      for (const userId of userIds) {
        const user = users.get(userId);
        if (!user) continue;
        released += releaseHeld(user, watermark);
        // Its earliest held event now is at or after the watermark: a later minute, not this sweep's.
        this.index(userId, user);
      }
    }
    this.held -= released;
    return released;
  }

  /** Files a user under the minute of their earliest held event (held ones are in event-time order); older filings are harmless. */
  private index(userId: string, user: UserState): void {
    const earliest = user.held[0];
    if (earliest) this.minute(earliest[2]).add(userId);
  }

  private minute(eventTime: number): Set<string> {
    const key = Math.floor(eventTime / MINUTE) * MINUTE;
    let set = this.byMinute.get(key);
    if (!set) this.byMinute.set(key, (set = new Set()));
    return set;
  }
}
