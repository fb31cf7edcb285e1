import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { portIsFree } from '../../../infra/kafka/freePort.ts';
import { PipelineError } from '../../common/errors.ts';
import type { StackPorts } from '../../common/stackState.ts';

export const STACK_HOST = '127.0.0.1';

/** What each remembered port is for, in words an operator reads in an error. */
const PORT_ROLES: Record<keyof StackPorts, string> = {
  broker: 'Kafka broker (KAFKA_BROKERS)',
  controller: 'Kafka KRaft controller',
  registry: 'schema registry (SCHEMA_REGISTRY_URL)',
};

/**
 * The ports of a new local stack, chosen once and then kept (see stackState.ts). They are
 * picked below the kernel's ephemeral range: a port in that range, once its listener is
 * down (a crash, `stack down`), can be taken as the source port of any outgoing
 * connection on the machine, and the stack could then not come back where it was.
 */
export async function chooseStackPorts(): Promise<StackPorts> {
  const [lowest, highest] = [20_000, Math.min(ephemeralRangeStart(), 65_536) - 1];
  const chosen: number[] = [];
  for (let attempt = 0; chosen.length < 3 && attempt < 200; attempt++) {
    const port = randomInt(lowest, highest + 1);
    if (!chosen.includes(port) && (await portIsFree(port, STACK_HOST))) chosen.push(port);
  }
  if (chosen.length < 3) throw new PipelineError('STACK_START_FAILED', `no free ports found for the local stack between ${lowest} and ${highest} on ${STACK_HOST}`);
  const [broker, controller, registry] = chosen as [number, number, number];
  return { broker, controller, registry };
}

/**
 * Fails, before anything starts, when a port the stack is about to listen on is taken.
 * The stack never moves silently: services and exported variables would keep dialling
 * the old address and report nothing wrong.
 */
export async function assertPortsFree(ports: StackPorts, which: (keyof StackPorts)[], stackDir: string): Promise<void> {
  for (const role of which) {
    const port = ports[role];
    if (await portIsFree(port, STACK_HOST)) continue;
    throw new PipelineError(
      'STACK_PORT_IN_USE',
      `port ${STACK_HOST}:${port}, kept for the ${PORT_ROLES[role]} of the local stack in ${stackDir}, is in use by another process. ` +
        `The stack keeps its ports so that running services and exported variables find it again. ` +
        `Stop that process (\`ss -ltnp 'sport = :${port}'\` names it) and run \`expctl stack up\` again, ` +
        `or run \`expctl stack down --purge\` to start over on new ports (this deletes the stack's data).`,
      { context: { port, role, stackDir } },
    );
  }
}

/** The first port the kernel hands out for outgoing connections (32768 unless tuned). */
function ephemeralRangeStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 20_100 ? first : 32_768;
  } catch {
    return 32_768;
  }
}
