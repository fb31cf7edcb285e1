/**
 * What a service says on /healthz: healthy, or the list of what is wrong, each in words an
 * operator can act on ("aggregate loop restarting for 42 s: The group coordinator is not
 * available"). Sources compose: a service is healthy when every part of it is.
 */
export interface HealthReport {
  healthy: boolean;
  problems: string[];
}

export interface HealthSource {
  health(now?: number): HealthReport;
}

export const HEALTHY: HealthReport = Object.freeze({ healthy: true, problems: [] as string[] }) as HealthReport;

export function combineHealth(parts: Record<string, HealthSource | undefined>): HealthSource {
  return {
    health: (now = Date.now()) => {
      const problems = Object.entries(parts).flatMap(([name, source]) => (source ? source.health(now).problems.map((p) => `${name}: ${p}`) : []));
      return { healthy: problems.length === 0, problems };
    },
  };
}

export function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}
