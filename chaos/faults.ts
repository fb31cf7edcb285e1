import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultKind, FaultPlan, ServiceName } from './drillOptions.ts';
import { describeLag, type PipelineWatch, type Sample } from './pipelineWatch.ts';
import type { ServiceProcess } from './serviceProcesses.ts';
import type { StackControl } from './stackControl.ts';

/**
 * Injects one fault and measures its recovery: from the injection to the first moment when
 * every consumer group that was moving before the fault has committed past where it stood at
 * the injection or has caught up with its input (end-to-end progress again), the services the
 * fault touched answer /healthz with 200, and no service has exited by itself. The drill's only interventions are the
 * fault itself and its documented counterpart: `expctl stack up` after killing the broker or
 * the registry, SIGCONT after a pause, and one start of the service it SIGKILLed.
 */
export interface FaultResult {
  kind: FaultKind;
  /** The service hit, or 'kafka' / 'schema-registry'. */
  target: string;
  injectedAt: number;
  recovered: boolean;
  recoverySeconds: number | null;
  /** What the drill did besides observing, with how long it took. */
  actions: string[];
  /** Why it did not recover (groups not moving, services unhealthy or gone), when it did not. */
  problems: string[];
}

export interface FaultContext {
  stack: StackControl;
  services: ReadonlyMap<ServiceName, ServiceProcess>;
  watch: PipelineWatch;
  sessionTimeoutMs: number;
  recoveryTimeoutMs: number;
}

export async function runFault(plan: FaultPlan, ctx: FaultContext): Promise<FaultResult> {
  const target = plan.service ?? (plan.kind === 'broker-kill' ? 'kafka' : 'schema-registry');
  const service = plan.service ? ctx.services.get(plan.service)! : undefined;
  const result: FaultResult = { kind: plan.kind, target, injectedAt: Date.now(), recovered: false, recoverySeconds: null, actions: [], problems: [] };
  if (service && !service.running) {
    result.problems.push(`${service.name} had already exited before the fault; nothing to inject`);
    return result;
  }
  // Which groups were moving just before: those must move again for the fault to count as healed.
  const before = await ctx.watch.sample();
  if (!before.ok) {
    result.problems.push(`could not read the consumer groups before the fault: ${before.error}`);
    return result;
  }
  const moving = ctx.watch.movingAt(before.at, 5_000);
  if (moving.size === 0) result.problems.push('no consumer group was moving before the fault (the pipeline was still broken): its recovery cannot be judged');
  const endpointsBefore = JSON.stringify(ctx.stack.endpoints());
  const affected = service ? [service] : [...ctx.services.values()];

  result.injectedAt = Date.now();
  const timed = async (label: string, action: () => Promise<unknown>) => {
    const started = Date.now();
    try {
      await action();
      result.actions.push(`${label} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (err) {
      result.actions.push(`${label} FAILED after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      result.problems.push(`${label}: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
    }
  };
  // The baseline progress is read once the fault has taken hold (for the broker: once it is
  // back, holding everything committed before it died), so that commits still in flight at
  // the injection are not mistaken for recovery.
  let baseline: Sample | undefined;
  const takeBaseline = async () => {
    const deadline = Date.now() + 30_000;
    do {
      const s = await ctx.watch.sample();
      if (s.ok) return (baseline = s);
      await sleep(250);
    } while (Date.now() < deadline);
    return undefined;
  };
  switch (plan.kind) {
    case 'broker-kill':
      await timed(`SIGKILL broker pid ${ctx.stack.state().kafka.pid}`, () => ctx.stack.killBroker());
      await timed('expctl stack up', () => ctx.stack.up());
      await takeBaseline();
      break;
    case 'registry-kill':
      await timed(`SIGKILL schema registry pid ${ctx.stack.state().registry.pid}`, () => ctx.stack.killRegistry());
      await takeBaseline();
      await timed('expctl stack up', () => ctx.stack.up());
      break;
    case 'service-pause': {
      const pauseMs = Math.round(ctx.sessionTimeoutMs * 1.5);
      service!.pause();
      await sleep(500);
      await takeBaseline();
      await sleep(Math.max(0, pauseMs - (Date.now() - result.injectedAt)));
      service!.resume();
      result.actions.push(`SIGSTOP ${service!.name} pid ${service!.pid} for ${((Date.now() - result.injectedAt) / 1000).toFixed(1)} s (1.5 × the ${ctx.sessionTimeoutMs / 1000} s session timeout), then SIGCONT`);
      break;
    }
    case 'service-kill': {
      const pid = service!.pid;
      await timed(`SIGKILL ${service!.name} pid ${pid}`, () => service!.kill());
      await takeBaseline();
      await timed(`start ${service!.name} again`, () => service!.start());
      break;
    }
  }
  if (!baseline) result.problems.push('could not read the consumer groups after the fault for 30 s');
  const endpointsAfter = JSON.stringify(ctx.stack.endpoints());
  if (endpointsAfter !== endpointsBefore) {
    result.problems.push(`the stack came back on other endpoints (${endpointsBefore} before, ${endpointsAfter} after): running services keep the old ones`);
  }

  const deadline = result.injectedAt + ctx.recoveryTimeoutMs;
  let last: Sample | undefined;
  for (;;) {
    const sample = await ctx.watch.sample();
    if (sample.ok) last = sample;
    const gone = [...ctx.services.values()].filter((s) => !s.running).map((s) => s.name);
    const unhealthy: string[] = [];
    for (const s of affected) {
      const h = await s.health();
      if (!h.ok) unhealthy.push(`${s.name} (${h.problems.join('; ').slice(0, 300)})`);
    }
    // A group caught up with its input is not stuck, whether or not more input came: control's
    // committed offset also moves past the markers a takeover leaves on its input, so it can
    // have been "moving" with no command to read after the fault.
    const stuck = sample.ok && baseline ? [...moving].filter((g) => (sample.groups[g]?.committed ?? 0) <= (baseline!.groups[g]?.committed ?? 0) && (sample.groups[g]?.lag ?? 1) > 0) : [...moving];
    if (sample.ok && baseline && gone.length === 0 && unhealthy.length === 0 && stuck.length === 0) {
      result.recovered = result.problems.length === 0;
      result.recoverySeconds = Math.round((sample.at - result.injectedAt) / 100) / 10;
      return result;
    }
    if (gone.length > 0 || Date.now() > deadline) {
      if (gone.length > 0) result.problems.push(`exited by itself: ${gone.join(', ')}`);
      if (!sample.ok) result.problems.push(`the consumer groups could not be read: ${sample.error}`);
      if (unhealthy.length > 0) result.problems.push(`/healthz not 200: ${unhealthy.join(', ')}`);
      if (stuck.length > 0 && baseline && sample.ok) result.problems.push(`no progress since the fault: ${stuck.map((g) => `${g} (committed ${baseline?.groups[g]?.committed ?? '?'} after the fault, ${last?.groups[g]?.committed ?? '?'} now)`).join(', ')}; ${describeLag(last, stuck)}`);
      if (Date.now() > deadline) result.problems.push(`not recovered within ${ctx.recoveryTimeoutMs / 1000} s`);
      return result;
    }
    await sleep(500);
  }
}
