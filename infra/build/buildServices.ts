import { relative } from 'node:path';
import { buildServiceBundles } from './serviceBundles.ts';

/** `npm run build`: the services' bundles (serviceBundles.ts), one line per file written. */
const started = Date.now();
const files = await buildServiceBundles();
for (const file of files) console.log(`built ${relative(process.cwd(), file)}`);
console.log(`${files.length} service bundles in ${Date.now() - started} ms; run one with: node dist/services/<name>.mjs`);
