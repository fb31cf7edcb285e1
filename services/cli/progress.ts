/**
 * Progress for long CLI steps, on stderr (stdout carries results). On a terminal a step
 * that runs longer than a few seconds shows it is still alive with its elapsed time.
 */
export interface Progress {
  step<T>(label: string, work: (note: (message: string) => void) => Promise<T>): Promise<T>;
  info(message: string): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const write = (line: string) => stream.write(`${line}\n`);
  return {
    info: write,
    async step(label, work) {
      const started = Date.now();
      write(`… ${label}`);
      const ticker = stream.isTTY ? setInterval(() => write(`  still ${label.toLowerCase()} (${seconds(started)} s)`), 5_000) : undefined;
      try {
        const result = await work((message) => write(`  ${message}`));
        write(`✓ ${label} (${seconds(started)} s)`);
        return result;
      } catch (err) {
        write(`✗ ${label} failed after ${seconds(started)} s`);
        throw err;
      } finally {
        if (ticker) clearInterval(ticker);
      }
    },
  };
}

function seconds(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(1);
}
