import { readFileSync, statSync } from 'node:fs';

/**
 * The last lines of a log file, for error messages about a process that failed to start.
 * `fromByte` skips what earlier runs appended to the same file.
 */
export function logTail(file: string, lines: number, fromByte = 0): string {
  try {
    const text = readFileSync(file).subarray(fromByte).toString('utf8').trimEnd();
    return text === '' ? '(no output)' : text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/** The current size of a log file (0 if missing): where this run's output will start. */
export function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
