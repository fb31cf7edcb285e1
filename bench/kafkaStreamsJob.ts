import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { processCpuSeconds } from './benchProcess.ts';

/**
 * The Kafka Streams implementation of the job (bench/kafka-streams, Maven): how the bench
 * builds it, starts it with a fixed heap, and watches its memory. Its build is offline when
 * ~/.m2 already holds the dependencies, from Maven Central otherwise.
 */
export const KAFKA_STREAMS_DIR = resolve(import.meta.dirname, 'kafka-streams');
/** The JVM's heap: fixed, so its memory is the job's and not the collector's choice. */
export const KAFKA_STREAMS_HEAP = '-Xmx512m';

export function buildKafkaStreamsJob(say: (m: string) => void): void {
  const offline = spawnSync('mvn', ['-q', '-o', '-B', 'package', '-DskipTests'], { cwd: KAFKA_STREAMS_DIR, encoding: 'utf8' });
  if (offline.status === 0) return;
  say('building bench/kafka-streams (mvn package: dependencies from Maven Central into ~/.m2)');
  const online = spawnSync('mvn', ['-q', '-B', 'package', '-DskipTests'], { cwd: KAFKA_STREAMS_DIR, encoding: 'utf8' });
  if (online.status !== 0) throw new Error(`mvn package failed in bench/kafka-streams:\n${(online.stdout + online.stderr).slice(-4_000)}`);
}

/** Versions from the pom and the JVM, for the results. */
export function kafkaStreamsVersions(): { kafkaStreams: string; avro: string; java: string } {
  const pom = readFileSync(resolve(KAFKA_STREAMS_DIR, 'pom.xml'), 'utf8');
  const property = (name: string) => new RegExp(`<${name}>([^<]+)</${name}>`).exec(pom)?.[1] ?? 'unknown';
  const java = spawnSync('java', ['-version'], { encoding: 'utf8' }).stderr.split('\n')[0]?.trim() ?? 'unknown';
  return { kafkaStreams: property('kafka.version'), avro: property('avro.version'), java };
}

export interface KafkaStreamsProcess {
  child: ChildProcess;
  log(): string;
  /** Peak resident set of the JVM so far (VmHWM), in KiB; 0 once it has exited. */
  peakRssKiB(): number;
  /** CPU time the JVM has used so far (all its threads), in seconds; 0 once it has exited. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export function startKafkaStreamsJob(jobFile: string): KafkaStreamsProcess {
  const lib = resolve(KAFKA_STREAMS_DIR, 'target/lib');
  if (!existsSync(lib)) throw new Error('bench/kafka-streams is not built (buildKafkaStreamsJob)');
  const child = spawn('java', [KAFKA_STREAMS_HEAP, '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn', '-cp', `${resolve(KAFKA_STREAMS_DIR, 'target/classes')}:${lib}/*`, 'expstream.bench.KafkaStreamsJob', jobFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  return {
    child,
    log: () => output,
    peakRssKiB: () => {
      try {
        return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
      } catch {
        return 0;
      }
    },
    cpuSeconds: () => processCpuSeconds(child.pid),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
