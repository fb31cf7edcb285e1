import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** The pipeline's version (package.json), stamped on rows so analysts know what produced them. */
export const PIPELINE_VERSION: string = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;
