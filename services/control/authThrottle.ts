/**
 * Slows down guessing of API tokens: failed authentications are counted per client address
 * over a sliding window; once an address has used up its allowance, its further failed
 * attempts get 429 until its oldest failure leaves the window. The caller checks the token
 * first and asks the throttle only about tokens that do not authenticate: a valid token is
 * never refused, so nobody sharing an address (a proxy, a NAT) can lock an operator out of
 * the stop button. Tokens are long random secrets (`expctl keys token`: 256 bits), so what the
 * throttle bounds is the cost and noise of guessing, not its odds. Memory is bounded: at most
 * `maxAddresses` addresses with at most `allowed` failures each.
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
