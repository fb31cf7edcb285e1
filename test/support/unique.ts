import { randomBytes } from 'node:crypto';

/** A name no other test (or earlier run) uses: isolates topics, groups and tables. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
