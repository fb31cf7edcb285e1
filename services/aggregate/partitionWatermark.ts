import type { PartitionStore } from '../common/changeloggedStore.ts';
import type { PipelineEvent } from '../common/contracts/pipelineEvent.ts';
import type { Outcome } from './applyEvent.ts';
import { emptyUserState, type UserState } from './userState.ts';
import type { UserTable } from './userTable.ts';

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
 * batch over an index of users (by their numbers in the partition's table) by the minute of
 * their earliest held event. Letting go changes no
 * number (the rules never reach behind the watermark), so the sweep does not changelog: a
 * restored user may bring back events already let go, which go again on the next sweep.
 */
export class PartitionWatermark {
  private streamTime = Number.NEGATIVE_INFINITY;
  /**
   * Users with held metric events, by the minute of their earliest held event. A user is filed
   * again when that minute changes, so it may be found under older minutes too (harmless: the
   * sweep then finds nothing to let go); a number is 4 bytes here, where a set of user ids cost
   * about ten times that per user.
   */
  private readonly byMinute = new Map<number, UserNumbers>();
  /** Metric events held on the partition (a gauge: the cost of the lateness). */
  held = 0;

  constructor(private readonly latenessMs: number) {}

  /** Rebuilds the clock and the index from a partition's users (after a restore, or on first use). */
  static fromState(latenessMs: number, users: UserTable): PartitionWatermark {
    const clock = new PartitionWatermark(latenessMs);
    users.forEachUser((number, newest, held, earliestHeld) => {
      clock.streamTime = Math.max(clock.streamTime, newest);
      clock.held += held;
      if (earliestHeld !== undefined) clock.file(number, earliestHeld);
    });
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
  take(users: PartitionStore<UserState> & { readonly table: UserTable }, event: PipelineEvent, apply: (user: UserState, watermark: number) => Outcome[]): Outcome[] | 'late' {
    if (this.isLate(event.eventTime)) return 'late';
    this.advance(event.eventTime);
    const user = users.get(event.userId) ?? emptyUserState();
    users.set(event.userId, user);
    // Two constants, not a destructured array literal: that allocated an array and an iterator per event.
    const before = user.held.length;
    const earliestBefore = user.held[0]?.[2];
    const outcomes = apply(user, this.watermark);
    this.held += user.held.length - before;
    const earliest = user.held[0]?.[2];
    if (earliest !== undefined && (earliestBefore === undefined || minuteOf(earliest) !== minuteOf(earliestBefore))) this.file(users.table.numberOf(event.userId), earliest);
    return outcomes;
  }

  /** Lets go of every held event behind the watermark, user by user, through the index. */
  sweep(users: UserTable): number {
    const watermark = this.watermark;
    let released = 0;
    for (const [minute, numbers] of this.byMinute) {
      // An event of this minute may still be at or after the watermark until the minute is wholly behind it.
      if (minute + MINUTE > watermark) continue;
      this.byMinute.delete(minute);
      for (let i = 0; i < numbers.length; i++) {
        const number = numbers.data[i]!;
        const { released: letGo, earliestHeld } = users.releaseHeld(number, watermark);
        released += letGo;
        // Its earliest held event now is at or after the watermark: a later minute, not this sweep's.
        if (letGo > 0 && earliestHeld !== undefined) this.file(number, earliestHeld);
      }
    }
    this.held -= released;
    return released;
  }

  /** Files a user under the minute of its earliest held event. */
  private file(number: number, earliestHeld: number): void {
    const key = minuteOf(earliestHeld);
    let numbers = this.byMinute.get(key);
    if (!numbers) this.byMinute.set(key, (numbers = new UserNumbers()));
    numbers.push(number);
  }
}

/** A growable list of user numbers. */
class UserNumbers {
  data = new Int32Array(4);
  length = 0;

  push(number: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(2 * this.data.length);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = number;
  }
}

function minuteOf(eventTime: number): number {
  return Math.floor(eventTime / MINUTE) * MINUTE;
}
