import type { Logger } from './logger.ts';

/**
 * Logs at most `perWindow` lines per key in each window and then one summary of what it
 * held back, so a flood of bad input cannot drown the log (or the disk) while every kind
 * of problem still shows up.
 */
export class LogRateLimiter {
  private windowStart = Date.now();
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly perWindow = 10,
    private readonly windowMs = 10_000,
  ) {}

  warn(key: string, fields: object, message: string): void {
    if (this.admit(key)) this.logger.warn(fields, message);
  }

  error(key: string, fields: object, message: string): void {
    if (this.admit(key)) this.logger.error(fields, message);
  }

  private admit(key: string): boolean {
    this.rollWindow();
    const seen = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, seen);
    return seen <= this.perWindow;
  }

  /** Emits the summary of suppressed lines now (also done when a window ends). */
  flush(): void {
    const suppressed = Object.fromEntries([...this.counts].filter(([, n]) => n > this.perWindow).map(([k, n]) => [k, n - this.perWindow]));
    if (Object.keys(suppressed).length > 0) this.logger.warn({ suppressed, windowMs: this.windowMs }, 'similar log lines suppressed');
    this.counts.clear();
    this.windowStart = Date.now();
  }

  private rollWindow(): void {
    if (Date.now() - this.windowStart >= this.windowMs) this.flush();
  }
}
