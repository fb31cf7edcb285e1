import { errorMessage } from '../../common/errors.ts';

/**
 * The processes one `stack up` call has started, so that when a later step fails it
 * stops exactly those, newest first, and nothing that was already running before it.
 */
export class StartedProcesses {
  private readonly entries: { name: string; stop: () => Promise<unknown> }[] = [];

  add(name: string, stop: () => Promise<unknown>): void {
    this.entries.push({ name, stop });
  }

  get names(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** Stops everything recorded (a failing stop does not keep the others running); returns the names. */
  async stopAll(report: (name: string, outcome: string) => void = () => {}): Promise<string[]> {
    const stopped: string[] = [];
    for (const entry of [...this.entries].reverse()) {
      try {
        await entry.stop();
        report(entry.name, 'stopped');
      } catch (err) {
        report(entry.name, `stop failed: ${errorMessage(err)}`);
      }
      stopped.push(entry.name);
    }
    this.entries.length = 0;
    return stopped;
  }
}
