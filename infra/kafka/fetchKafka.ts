import { execFile } from 'node:child_process';
import { PipelineError } from '../../services/common/errors.ts';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Fetches the Apache Kafka broker's runtime class path from Maven Central with the pom
 * beside this file, into `<cacheDir>/kafka-<version>/libs`. A marker written after a
 * complete copy makes later calls free; a half-finished copy is redone.
 */
export const DEFAULT_KAFKA_VERSION = '4.4.0';
const POM = resolve(import.meta.dirname, 'pom.xml');

export interface KafkaInstall {
  version: string;
  libDir: string;
  /** The java class path: every jar of libDir. */
  classpath: string;
}

export async function ensureKafkaInstalled(options: { cacheDir: string; version?: string; onProgress?: (message: string) => void }): Promise<KafkaInstall> {
  const version = options.version ?? DEFAULT_KAFKA_VERSION;
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`Kafka version must look like 4.4.0, got '${version}'`);
  const home = join(options.cacheDir, `kafka-${version}`);
  const libDir = join(home, 'libs');
  const marker = join(home, 'fetched.json');
  const install = { version, libDir, classpath: `${libDir}/*` };
  if (existsSync(marker)) return install;

  const say = options.onProgress ?? (() => {});
  say(`fetching Apache Kafka ${version} jars from Maven Central (first run only)`);
  const started = Date.now();
  rmSync(libDir, { recursive: true, force: true });
  mkdirSync(libDir, { recursive: true });
  const args = ['-B', '-q', '-f', POM, `-Dkafka.version=${version}`, 'dependency:copy-dependencies', `-DoutputDirectory=${libDir}`, '-DincludeScope=runtime'];
  await new Promise<void>((resolvePromise, reject) => {
    execFile('mvn', args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolvePromise();
      const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-25).join('\n');
      const hint = (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (is Maven installed? `apt-get install maven`)' : '';
      reject(new PipelineError('STACK_START_FAILED', `fetching Apache Kafka ${version} with Maven failed${hint}${output ? `:\n${output}` : ''}`));
    });
  });
  const jars = readdirSync(libDir).filter((f) => f.endsWith('.jar'));
  if (!jars.some((j) => j.startsWith(`kafka_2.13-${version}`))) throw new Error(`Maven finished but ${libDir} holds no kafka_2.13-${version} jar`);
  writeFileSync(marker, JSON.stringify({ version, jars: jars.length, fetchedAt: new Date().toISOString() }, null, 2));
  say(`fetched ${jars.length} jars in ${((Date.now() - started) / 1000).toFixed(1)} s into ${libDir}`);
  return install;
}
