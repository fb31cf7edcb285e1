import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes a file so that a reader in another process sees either the old content or the
 * new, never a prefix: the text goes to a temporary name in the same directory (same
 * filesystem, so the rename is atomic) and is then renamed over `path`. The temporary name
 * carries this process's pid, so two writers never truncate each other's half-written copy.
 */
export function writeFileAtomically(path: string, text: string, options: { mode?: number } = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, text, options.mode === undefined ? undefined : { mode: options.mode });
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}
