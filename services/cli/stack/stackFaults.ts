import type { Config } from '../../common/config.ts';
import { PipelineError } from '../../common/errors.ts';
import { isProcessAlive, processCommandLine, waitForExit } from '../../common/processes.ts';
import { readStackState } from '../../common/stackState.ts';
import { brokerStatus } from '../../../infra/kafka/localBroker.ts';
import { registryStatus } from './registryProcess.ts';

export type CrashableComponent = 'kafka' | 'schema-registry';

/**
 * Fault injection for chaos drills: kills a part of the running local stack the way a
 * crash would (SIGKILL: no shutdown, no flush) and returns once it is really gone. A
 * killed JVM takes a moment to die (seconds under load) and holds its port until then.
 * `stackUp(config, progress)` brings it back on the same address (see localStack.ts).
 * Only a process that is still the recorded broker or registry is killed, never a pid
 * that has since been reused by something else.
 */
export async function crashStackComponent(config: Config, component: CrashableComponent, timeoutMs = 30_000): Promise<{ pid: number }> {
  const state = readStackState(config.stack.dir);
  const pid = component === 'kafka' ? state?.kafka.pid : state?.registry.pid;
  const runningPid = !state ? undefined : component === 'kafka' ? brokerStatus(state.kafka.dataDir).pid : registryStatus(config.stack.dir).pid;
  if (pid === undefined || runningPid !== pid) {
    throw new PipelineError('STACK_NOT_RUNNING', `the ${describe(component)} of the local stack in ${config.stack.dir} is not running: nothing to crash`, { context: { component } });
  }
  process.kill(pid, 'SIGKILL');
  if (!(await waitForExit(pid, timeoutMs))) {
    throw new PipelineError('SHUTDOWN_TIMEOUT', `the ${describe(component)} (pid ${pid}) was sent SIGKILL but had not exited after ${timeoutMs} ms`, { context: { component, pid } });
  }
  return { pid };
}

/**
 * Waits for a recorded process that is dying: killed, its main thread already a zombie
 * (no command line left), other threads still tearing down and holding its sockets.
 * Anything else (gone, or a live process) returns at once.
 */
export async function waitWhileDying(pid: number | undefined, timeoutMs = 30_000): Promise<void> {
  if (pid !== undefined && isProcessAlive(pid) && processCommandLine(pid) === '') await waitForExit(pid, timeoutMs);
}

function describe(component: CrashableComponent): string {
  return component === 'kafka' ? 'Kafka broker' : 'schema registry';
}
