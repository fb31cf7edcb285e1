import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';

/**
 * The services as deployed: one ES module per service, `dist/services/<name>.mjs` (and one per
 * worker thread a service starts, WORKER_ENTRIES), our
 * TypeScript bundled and type-stripped by esbuild, packages left to node_modules (so the
 * patched kafkajs and chDB's native module load as they do under tsx).
 *
 * Why not `node --import tsx`: tsx's loader hooks run in a thread of their own, a second V8
 * isolate that stays for the life of the process. A service started through it begins at
 * ~104 MiB resident, a bundle at ~68 MiB; ingest and the aggregator run side by side, so that is
 * ~70 MiB of the step-13 memory budget (bench/README.md). Development and the tests keep
 * running the sources through tsx (no build step between an edit and a test run); the bench and
 * the chaos drill run these bundles, built from the sources every time they start.
 */
export const SERVICE_NAMES = ['ingest', 'aggregate', 'guard', 'control', 'notify', 'sink'] as const;
export type BundledService = (typeof SERVICE_NAMES)[number];
/** Worker threads a service starts, each its own bundle next to the service's (`new URL('./<name>.mjs', import.meta.url)`). */
export const WORKER_ENTRIES = { 'aggregate-restore-worker': 'services/aggregate/restoreWorker.ts' } as const;

const ROOT = resolve(import.meta.dirname, '../..');
const OUT_DIR = resolve(ROOT, 'dist/services');

/** The bundle a service runs from (`node <path>`), built by buildServiceBundles. */
export function serviceBundlePath(name: BundledService): string {
  return resolve(OUT_DIR, `${name}.mjs`);
}

/** The bundle of a worker thread's entry, built by buildServiceBundles. */
export function workerBundlePath(name: keyof typeof WORKER_ENTRIES): string {
  return resolve(OUT_DIR, `${name}.mjs`);
}

/**
 * Builds every service's bundle from the sources. Each file is written next to its final
 * name and renamed over it, so a process starting at the same time never reads half a bundle.
 */
export async function buildServiceBundles(): Promise<string[]> {
  const result = await build({
    entryPoints: {
      ...Object.fromEntries(SERVICE_NAMES.map((name) => [name, resolve(ROOT, `services/${name}/main.ts`)])),
      ...Object.fromEntries(Object.entries(WORKER_ENTRIES).map(([name, source]) => [name, resolve(ROOT, source)])),
    },
    outdir: OUT_DIR,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    banner: { js: SOURCE_DIR_HELPER },
    plugins: [sourceDirectories],
    write: false,
    logLevel: 'silent',
  });
  await mkdir(OUT_DIR, { recursive: true });
  for (const file of result.outputFiles) {
    const staging = `${file.path}.${process.pid}.tmp`;
    await writeFile(staging, file.contents);
    await rename(staging, file.path);
  }
  return result.outputFiles.map((file) => file.path);
}

/**
 * Sources find files next to them (schemas, migrations, the results page) through
 * `import.meta.dirname`, which in a bundle is dist/services. Each use is rewritten to the
 * source file's own directory, found from the bundle's: dist/services is two levels below the
 * repository root, as every services/<name>/ source directory is.
 */
const SOURCE_DIR_HELPER = "import { join as __expstreamJoin } from 'node:path';\nconst __expstreamSourceDir = (dir) => __expstreamJoin(import.meta.dirname, '..', '..', dir);";

const sourceDirectories: Plugin = {
  name: 'expstream-source-directories',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async ({ path }) => {
      const source = await readFile(path, 'utf8');
      if (!source.includes('import.meta.dirname')) return { contents: source, loader: 'ts' };
      const dir = relative(ROOT, dirname(path)).split('\\').join('/');
      if (dir.startsWith('..')) throw new Error(`${path} is outside the repository and uses import.meta.dirname`);
      return { contents: source.replaceAll('import.meta.dirname', `__expstreamSourceDir(${JSON.stringify(dir)})`), loader: 'ts' };
    });
  },
};
