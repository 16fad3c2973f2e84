import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { UsageStatus } from '../db/repositories/usageRepository';
import { ROUTE_CLASSES, type RouteClass } from '../http/routeClass';
import type { ModelCallObserver, SettledCall } from '../llm/modelGateway';
import { OBSERVED_STATES, type ObservedState } from '../runtime/observedState';
import type { OperationKind, OperationStatus, OperationView } from '../runtime/operations';

/** What is read at scrape time from the services that already know it (nothing is kept twice). */
export interface MetricSources {
  /** The observed state of every runtime. */
  runtimeStates(): Iterable<ObservedState>;
  /** Runtime operations waiting for a slot (CLAWLOOPS_RUNTIME_MAX_PARALLEL). */
  queuedOperations(): number;
  /** Runtime operations launched and not finished, queued ones included. */
  operationsInFlight(): number;
  openEventStreams(): number;
  /** Whether a model id may appear as a label: only the catalog's, so a caller cannot mint series. */
  knownModel(id: string): boolean;
  /** Subscribes to every runtime operation as it is launched (the runtime event hub). */
  subscribeOperations(listener: (operation: { kind: OperationKind; done: Promise<OperationView> }) => void): () => void;
}

/** The label a model outside the catalog is counted under. */
export const OTHER_MODEL = 'other';

type ModelCallStatus = UsageStatus | 'limited' | 'unpriced';
type FileDirection = 'in' | 'out';

/** `2xx` … `5xx`; `aborted` for a request cut before any answer. */
const statusClass = (status: number | null): string => (status === null ? 'aborted' : status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other');

/**
 * The platform's Prometheus metrics: one registry of its own (never prom-client's global one, so
 * several platforms in one process, as in the tests, each count their own). Domain code knows
 * nothing of prom-client: it tells small observer interfaces what happened (this class implements
 * them), and what is a state rather than an event (runtimes by state, queued operations) is read
 * from the services when Prometheus scrapes. Every label takes its values from a fixed set (or
 * the admin's model catalog): no user, path or request ever becomes a label.
 */
export class PlatformMetrics implements ModelCallObserver {
  readonly registry = new Registry();
  private readonly operationDuration: Histogram<'kind' | 'status'>;
  private readonly modelCalls: Counter<'model' | 'status'>;
  private readonly modelDuration: Histogram<'model' | 'status'>;
  private readonly modelTokens: Counter<'model' | 'type'>;
  private readonly modelCost: Counter<'model'>;
  private readonly fileBytes: Counter<'direction'>;
  private readonly httpDuration: Histogram<'route_class' | 'status_class'>;
  private readonly streamsOpened: Counter;
  private readonly streamReconnects: Counter;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly sources: MetricSources,
    version: string,
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    new Gauge({ name: 'clawloops_info', help: 'Always 1; the version of this control plane as a label.', labelNames: ['version'], registers }).set({ version }, 1);
    new Gauge({
      name: 'clawloops_runtimes',
      help: 'Runtimes by their observed state (as the console shows it).',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<ObservedState, number>(OBSERVED_STATES.map((s) => [s, 0]));
        for (const state of sources.runtimeStates()) counts.set(state, (counts.get(state) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ state }, count);
      },
    });
    new Gauge({
      name: 'clawloops_runtime_operations_queued',
      help: 'Runtime operations waiting for one of the CLAWLOOPS_RUNTIME_MAX_PARALLEL slots.',
      registers,
      collect() {
        this.set(sources.queuedOperations());
      },
    });
    new Gauge({
      name: 'clawloops_runtime_operations_in_flight',
      help: 'Runtime operations launched and not yet finished (queued ones included).',
      registers,
      collect() {
        this.set(sources.operationsInFlight());
      },
    });
    new Gauge({
      name: 'clawloops_event_streams_open',
      help: 'Open Server-Sent Event streams (runtime progress and log streams).',
      registers,
      collect() {
        this.set(sources.openEventStreams());
      },
    });
    this.operationDuration = new Histogram({
      name: 'clawloops_runtime_operation_duration_seconds',
      help: 'Time from launching a runtime operation (start, stop, restart, ...) to its end, queueing included.',
      labelNames: ['kind', 'status'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.modelCalls = new Counter({ name: 'clawloops_model_calls_total', help: 'Model calls through the gateway, by catalog model and outcome.', labelNames: ['model', 'status'], registers });
    this.modelDuration = new Histogram({
      name: 'clawloops_model_call_duration_seconds',
      help: 'Time of model calls the gateway forwarded, to the end of the answer.',
      labelNames: ['model', 'status'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.modelTokens = new Counter({ name: 'clawloops_model_tokens_total', help: 'Tokens charged for model calls (prompt or completion).', labelNames: ['model', 'type'], registers });
    this.modelCost = new Counter({ name: 'clawloops_model_cost_usd_total', help: 'What model calls cost at the catalog prices, in US dollars.', labelNames: ['model'], registers });
    this.fileBytes = new Counter({ name: 'clawloops_file_bytes_total', help: 'Bytes of workspace files through the file API and WebDAV (in: API uploads, imports, edits, WebDAV PUT; out: downloads, WebDAV GET included, exports, reads).', labelNames: ['direction'], registers });
    this.httpDuration = new Histogram({
      name: 'clawloops_http_request_duration_seconds',
      help: 'Time to answer HTTP requests, by route class and status class.',
      labelNames: ['route_class', 'status_class'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.streamsOpened = new Counter({ name: 'clawloops_event_streams_opened_total', help: 'Server-Sent Event streams opened (reconnects included).', registers });
    this.streamReconnects = new Counter({
      name: 'clawloops_event_stream_reconnects_total',
      help: 'Event streams a browser reopened by itself after losing one (requests carrying Last-Event-ID).',
      registers,
    });

    // Series that exist from the first scrape: rate() and absent() need no first event.
    for (const direction of ['in', 'out'] as const) this.fileBytes.inc({ direction }, 0);
    for (const route_class of ROUTE_CLASSES) this.httpDuration.zero({ route_class, status_class: '2xx' });
    this.unsubscribe = sources.subscribeOperations((operation) => this.operationLaunched(operation));
  }

  private operationLaunched(operation: { kind: OperationKind; done: Promise<OperationView> }): void {
    // A monotonic clock: the platform's clock may be a test's, and wall time may jump.
    const started = performance.now();
    void operation.done.then((view) => this.operationDuration.observe({ kind: operation.kind, status: view.status satisfies OperationStatus }, (performance.now() - started) / 1000));
  }

  private modelLabel(id: string): string {
    return this.sources.knownModel(id) ? id : OTHER_MODEL;
  }

  settled(call: SettledCall): void {
    const model = this.modelLabel(call.model);
    this.modelCalls.inc({ model, status: call.status });
    // The ledger's latency is by the wall clock, which may step back.
    this.modelDuration.observe({ model, status: call.status }, Math.max(0, call.latencyMs) / 1000);
    this.modelTokens.inc({ model, type: 'prompt' }, call.promptTokens);
    this.modelTokens.inc({ model, type: 'completion' }, call.completionTokens);
    this.modelCost.inc({ model }, call.costMicrodollars / 1e6);
  }

  refused(model: string, reason: Extract<ModelCallStatus, 'limited' | 'unpriced'>): void {
    this.modelCalls.inc({ model: this.modelLabel(model), status: reason });
  }

  fileTraffic(direction: FileDirection, bytes: number): void {
    if (bytes > 0) this.fileBytes.inc({ direction }, bytes);
  }

  httpRequest(routeClass: RouteClass, status: number | null, seconds: number): void {
    this.httpDuration.observe({ route_class: routeClass, status_class: statusClass(status) }, seconds);
  }

  eventStreamOpened(reconnect: boolean): void {
    this.streamsOpened.inc();
    if (reconnect) this.streamReconnects.inc();
  }

  /** The exposition text Prometheus scrapes. */
  expose(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.unsubscribe();
    this.registry.clear();
  }
}
