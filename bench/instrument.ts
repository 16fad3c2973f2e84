/**
 * Time spans of every engine call and readiness probe the runtime manager makes, for the
 * breakdown of one start. Wraps the production DockerodeRuntimeBackend and HTTP probe without
 * changing what they do; the wrapper costs microseconds per call.
 */
import { DockerodeRuntimeBackend } from '../src/docker/dockerodeRuntimeBackend';
import type { RuntimeBackend } from '../src/docker/runtimeBackend';
import { runtimeHttpProbe, type HttpProbe } from '../src/runtime/readinessProbe';
import { docker } from './support';

export interface Span {
  name: string;
  start: number;
  end: number;
  /** Probe answers: the HTTP status, or null when nothing answered. */
  result?: number | null;
}

export interface Instrumented {
  backend: RuntimeBackend;
  probe: HttpProbe;
  /** Starts a new recording; spans are relative to `t0` (performance.now()). */
  reset(t0: number): void;
  spans(): Span[];
}

export function instrumented(instance: string): Instrumented {
  const real = new DockerodeRuntimeBackend(docker, instance);
  let t0 = 0;
  let recorded: Span[] = [];
  const backend = new Proxy(real, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'constructor') return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const start = performance.now() - t0;
        // The watcher reacts to the engine's own events with calls of its own: tell them apart.
        const name = /runtimeWatcher/.test(new Error().stack ?? '') ? `watcher: ${String(prop)}` : String(prop);
        const result = fn.apply(target, args);
        if (result instanceof Promise) {
          return result.finally(() => recorded.push({ name, start, end: performance.now() - t0 }));
        }
        recorded.push({ name, start, end: performance.now() - t0 });
        return result;
      };
    },
  }) as RuntimeBackend;
  const probe: HttpProbe = {
    async status(address, path, timeoutMs) {
      const start = performance.now() - t0;
      const result = await runtimeHttpProbe.status(address, path, timeoutMs);
      recorded.push({ name: `probe ${path}`, start, end: performance.now() - t0, result });
      return result;
    },
  };
  return {
    backend,
    probe,
    reset(at) {
      t0 = at;
      recorded = [];
    },
    spans: () => [...recorded].sort((a, b) => a.start - b.start),
  };
}
