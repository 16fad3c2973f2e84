import fs from 'node:fs';
import path from 'node:path';
import { ROUTE_CLASSES } from '../../src/http/routeClass';
import { OTHER_MODEL, PlatformMetrics, type MetricSources } from '../../src/metrics/platformMetrics';
import type { ObservedState } from '../../src/runtime/observedState';
import type { OperationKind, OperationView } from '../../src/runtime/operations';
import { labelValues, parseExposition, samplesOf, sumOf } from '../support/promText';

type Launched = Parameters<Parameters<MetricSources['subscribeOperations']>[0]>[0];

function fixture() {
  const state = {
    runtimes: ['running', 'running', 'stopped', 'creating'] as ObservedState[],
    queued: 2,
    inFlight: 3,
    streams: 5,
    listeners: new Set<(operation: Launched) => void>(),
  };
  const sources: MetricSources = {
    runtimeStates: () => state.runtimes,
    queuedOperations: () => state.queued,
    operationsInFlight: () => state.inFlight,
    openEventStreams: () => state.streams,
    knownModel: (id) => id === 'gpt-test',
    subscribeOperations: (listener) => {
      state.listeners.add(listener);
      return () => state.listeners.delete(listener);
    },
  };
  const metrics = new PlatformMetrics(sources, '1.2.3');
  const launch = (kind: OperationKind): ((status: 'succeeded' | 'failed') => void) => {
    let finish!: (view: OperationView) => void;
    const done = new Promise<OperationView>((resolve) => (finish = resolve));
    for (const listener of state.listeners) listener({ kind, done });
    return (status) => finish({ status } as OperationView);
  };
  const scrape = async () => parseExposition(await metrics.expose());
  return { state, metrics, launch, scrape };
}

describe('PlatformMetrics', () => {
  test('runtimes by state and the queue are read at scrape time, every state present', async () => {
    const { state, metrics, scrape } = fixture();
    let text = await scrape();
    expect(sumOf(text, 'clawloops_runtimes', { state: 'running' })).toBe(2);
    expect(sumOf(text, 'clawloops_runtimes', { state: 'stopped' })).toBe(1);
    expect(sumOf(text, 'clawloops_runtimes', { state: 'failed' })).toBe(0);
    expect(labelValues(text, 'clawloops_runtimes', 'state')).toEqual(new Set(['absent', 'creating', 'starting', 'running', 'unhealthy', 'stopping', 'stopped', 'failed']));
    expect(sumOf(text, 'clawloops_runtime_operations_queued')).toBe(2);
    expect(sumOf(text, 'clawloops_runtime_operations_in_flight')).toBe(3);
    expect(sumOf(text, 'clawloops_event_streams_open')).toBe(5);
    state.runtimes = [];
    state.queued = 0;
    text = await scrape();
    expect(sumOf(text, 'clawloops_runtimes')).toBe(0);
    expect(sumOf(text, 'clawloops_runtime_operations_queued')).toBe(0);
    expect(text.types.get('clawloops_runtimes')).toBe('gauge');
    expect(samplesOf(text, 'clawloops_info', { version: '1.2.3' })[0]?.value).toBe(1);
    metrics.close();
  });

  test('runtime operations are timed from launch to end, by kind and outcome', async () => {
    const { metrics, launch, scrape } = fixture();
    const start = launch('start');
    const stop = launch('stop');
    expect(sumOf(await scrape(), 'clawloops_runtime_operation_duration_seconds_count')).toBe(0);
    start('succeeded');
    stop('failed');
    await new Promise((resolve) => setImmediate(resolve));
    const text = await scrape();
    expect(text.types.get('clawloops_runtime_operation_duration_seconds')).toBe('histogram');
    expect(sumOf(text, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'start', status: 'succeeded' })).toBe(1);
    expect(sumOf(text, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'stop', status: 'failed' })).toBe(1);
    expect(sumOf(text, 'clawloops_runtime_operation_duration_seconds_bucket', { kind: 'start', le: '+Inf' })).toBe(1);
    metrics.close();
  });

  test('model calls count under catalog models only; anything else is "other"', async () => {
    const { metrics, scrape } = fixture();
    metrics.settled({ model: 'gpt-test', status: 'ok', latencyMs: 1500, promptTokens: 10, completionTokens: 5, costMicrodollars: 2500 });
    metrics.settled({ model: 'made-up-by-a-caller', status: 'upstream_error', latencyMs: 20, promptTokens: 3, completionTokens: 0, costMicrodollars: 0 });
    metrics.refused('gpt-test', 'limited');
    metrics.refused('another-invention', 'unpriced');
    const text = await scrape();
    expect(labelValues(text, 'clawloops_model_calls_total', 'model')).toEqual(new Set(['gpt-test', OTHER_MODEL]));
    expect(sumOf(text, 'clawloops_model_calls_total', { model: 'gpt-test', status: 'ok' })).toBe(1);
    expect(sumOf(text, 'clawloops_model_calls_total', { model: 'gpt-test', status: 'limited' })).toBe(1);
    expect(sumOf(text, 'clawloops_model_calls_total', { model: OTHER_MODEL })).toBe(2);
    expect(sumOf(text, 'clawloops_model_tokens_total', { model: 'gpt-test', type: 'prompt' })).toBe(10);
    expect(sumOf(text, 'clawloops_model_tokens_total', { model: 'gpt-test', type: 'completion' })).toBe(5);
    expect(sumOf(text, 'clawloops_model_cost_usd_total', { model: 'gpt-test' })).toBeCloseTo(0.0025, 10);
    expect(sumOf(text, 'clawloops_model_call_duration_seconds_sum', { model: 'gpt-test' })).toBeCloseTo(1.5, 10);
    metrics.close();
  });

  test('file bytes, HTTP requests by class and stream reconnects', async () => {
    const { metrics, scrape } = fixture();
    let text = await scrape();
    // Present before anything happened, so rate() has a series from the start.
    expect(samplesOf(text, 'clawloops_file_bytes_total')).toHaveLength(2);
    expect(labelValues(text, 'clawloops_http_request_duration_seconds_count', 'route_class')).toEqual(new Set(ROUTE_CLASSES));
    metrics.fileTraffic('in', 100);
    metrics.fileTraffic('out', 40);
    metrics.fileTraffic('out', 2);
    metrics.httpRequest('api', 201, 0.02);
    metrics.httpRequest('files', 404, 0.5);
    metrics.httpRequest('gateway', 502, 1);
    metrics.httpRequest('workspace', null, 3);
    metrics.eventStreamOpened(false);
    metrics.eventStreamOpened(true);
    text = await scrape();
    expect(sumOf(text, 'clawloops_file_bytes_total', { direction: 'in' })).toBe(100);
    expect(sumOf(text, 'clawloops_file_bytes_total', { direction: 'out' })).toBe(42);
    expect(sumOf(text, 'clawloops_http_request_duration_seconds_count', { route_class: 'api', status_class: '2xx' })).toBe(1);
    expect(sumOf(text, 'clawloops_http_request_duration_seconds_count', { route_class: 'files', status_class: '4xx' })).toBe(1);
    expect(sumOf(text, 'clawloops_http_request_duration_seconds_count', { route_class: 'gateway', status_class: '5xx' })).toBe(1);
    expect(sumOf(text, 'clawloops_http_request_duration_seconds_count', { route_class: 'workspace', status_class: 'aborted' })).toBe(1);
    expect(sumOf(text, 'clawloops_event_streams_opened_total')).toBe(2);
    expect(sumOf(text, 'clawloops_event_stream_reconnects_total')).toBe(1);
    metrics.close();
  });

  test('process metrics are there, and two platforms in one process count apart', async () => {
    const one = fixture();
    const two = fixture();
    one.metrics.fileTraffic('in', 7);
    const [a, b] = [await one.scrape(), await two.scrape()];
    expect(sumOf(a, 'clawloops_file_bytes_total', { direction: 'in' })).toBe(7);
    expect(sumOf(b, 'clawloops_file_bytes_total', { direction: 'in' })).toBe(0);
    for (const text of [a, b]) {
      expect(samplesOf(text, 'process_cpu_user_seconds_total')).toHaveLength(1);
      expect(samplesOf(text, 'process_resident_memory_bytes').length + samplesOf(text, 'nodejs_heap_size_used_bytes').length).toBeGreaterThan(0);
    }
    one.metrics.close();
    two.metrics.close();
  });
});

describe('the example Grafana dashboard (docs/grafana-dashboard.json)', () => {
  test('is valid JSON whose queries name only metrics the platform exports', async () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'grafana-dashboard.json'), 'utf8')) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const { metrics, scrape } = fixture();
    const exported = (await scrape()).types;
    const named = new Set(exprs.flatMap((e) => e.match(/\b(?:clawloops|process|nodejs)_[a-z0-9_]+\b/g) ?? []));
    const family = (name: string) => (exported.has(name) ? name : name.replace(/_(bucket|count|sum)$/, ''));
    expect([...named].filter((name) => !exported.has(family(name)))).toEqual([]);
    // Every subject the issue names has a panel.
    const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join(' | ');
    for (const subject of ['runtimes by state', 'start and stop', 'queued', 'model calls', 'latency', 'tokens', 'cost', 'file bytes', 'route class', 'cpu', 'memory']) expect(titles).toContain(subject);
    metrics.close();
  });
});
