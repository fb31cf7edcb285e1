import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface ChildService {
  process: ChildProcess;
  /** Everything the child wrote to stderr (its pino log). */
  log: () => string;
  /** Resolves when the child has logged `<name> started`. */
  started: Promise<void>;
  exited: Promise<number | null>;
}

/** Runs a service's main module as a real child process, as production would. */
export function spawnService(mainModule: string, env: Record<string, string>): ChildService {
  const child = spawn(process.execPath, ['--import', TSX, resolve(ROOT, mainModule)], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  const started = new Promise<void>((ok, fail) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/"msg":"\w+ started"/.test(output)) ok();
    });
    child.once('exit', (code) => fail(new Error(`service exited with ${code} before it started:\n${output.slice(-3_000)}`)));
  });
  started.catch(() => {});
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { process: child, log: () => output, started, exited };
}


/**
 * Waits until a consumer group has caught up with its topics and stays there for `stableMs`.
 * Transaction markers take offsets a consumer never commits past, so "caught up" allows one
 * trailing marker per partition.
 */
export async function waitUntilSettled(kafka: import('kafkajs').Kafka, groupId: string, topics: string[], options: { stableMs?: number; timeoutMs?: number } = {}): Promise<void> {
  const { groupLag } = await import('../../services/common/groupProgress.ts');
  const admin = kafka.admin();
  await admin.connect();
  const partitions = (await admin.fetchTopicMetadata({ topics })).topics.reduce((n, t) => n + t.partitions.length, 0);
  await admin.disconnect();
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let settledSince = 0;
  let last = -1;
  while (Date.now() < deadline) {
    const lag = await groupLag(kafka, groupId, topics);
    if (lag <= partitions && lag === last) {
      settledSince ||= Date.now();
      if (Date.now() - settledSince >= (options.stableMs ?? 2_000)) return;
    } else settledSince = 0;
    last = lag;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`group ${groupId} did not settle on ${topics.join(', ')}`);
}
