// A worker thread started from the TypeScript sources (development, the tests, `expctl`, which
// run them through tsx) loads its entry through tsx's loader, as its process does: a worker
// does not inherit the loader hooks its process registered. The bundles (infra/build) start
// their workers' own bundles and never use this.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
