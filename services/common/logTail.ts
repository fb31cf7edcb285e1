import { readFileSync } from 'node:fs';

/** The last lines of a log file, for error messages about a process that failed to start. */
export function logTail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}
