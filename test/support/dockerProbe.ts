import { errorMessage } from '../../services/common/errors.ts';

/**
 * Asks testcontainers whether a container runtime is reachable. On hosts without one (this
 * machine, its CI) the answer is a reason to print, never a failure.
 */
export async function probeContainerRuntime(): Promise<{ available: true } | { available: false; reason: string }> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), 10_000);
    return { available: true };
  } catch (err) {
    return { available: false, reason: errorMessage(err) };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}
