/**
 * Slows down guessing: failed authentications are counted per client address over a sliding
 * window; once an address has used up its allowance, every request from it is refused with
 * 429 (without looking at the token) until its oldest failure leaves the window.
 */
export class AuthThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly allowed: number,
    private readonly windowMs = 60_000,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Milliseconds until the address may try again; 0 if it may now. */
  blockedFor(address: string, now = Date.now()): number {
    const recent = this.recent(address, now);
    if (recent.length < this.allowed) return 0;
    return recent[recent.length - this.allowed]! + this.windowMs - now;
  }

  recordFailure(address: string, now = Date.now()): void {
    const recent = this.recent(address, now);
    recent.push(now);
    this.failures.set(address, recent);
    // Bounded memory under a spray of addresses: forget the oldest entries first.
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(address: string, now: number): number[] {
    const list = (this.failures.get(address) ?? []).filter((t) => t > now - this.windowMs);
    if (list.length === 0) this.failures.delete(address);
    return list;
  }
}
