import { useCallback, useEffect, useReducer, useRef, useState, type ReactNode } from 'react';
import { api } from '../api/client';
import type { ContainerStats, LogLine, OperationView, RuntimeStats, RuntimeView, StartedOperation } from '../api/types';
import { useSession } from '../app/session';
import { useI18n, type Translate } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatBytes, formatDateTime, share } from '../lib/format';
import { allowedActions, applyRuntimeEvent, INITIAL_STATUS, type RuntimeAction, type RuntimeEvent } from '../lib/runtimeEvents';
import { stopReasonText } from '../lib/stopReason';
import { OPEN, useEventSource } from '../ui/useEventSource';
import { Button, Card, ErrorNote, Notice, ProgressBar } from '../ui/ui';

const STATE_KEYS: Record<RuntimeView['state'], MessageKey> = {
  absent: 'runtime.state.absent',
  creating: 'runtime.state.creating',
  starting: 'runtime.state.starting',
  running: 'runtime.state.running',
  unhealthy: 'runtime.state.unhealthy',
  stopping: 'runtime.state.stopping',
  stopped: 'runtime.state.stopped',
  failed: 'runtime.state.failed',
};

export function stateLabel(t: Translate, state: RuntimeView['state']): string {
  return t(STATE_KEYS[state]);
}

/** What the progress bar says: the step's message, bytes while pulling, the queue position while waiting. */
export function operationText(t: Translate, op: OperationView, locale: string): string {
  if (op.status === 'failed') return op.error?.message ?? op.message;
  if (op.status === 'queued' && op.queuePosition !== null) return t('runtime.queued', { ahead: op.queuePosition });
  if (op.bytesTotal) return `${op.message} (${formatBytes(op.bytesDone ?? 0, locale)} / ${formatBytes(op.bytesTotal, locale)})`;
  return op.message;
}

/** An operation's progress as the runtime's event stream reports it (start, restore, move…): its words, percent and bar. */
export function OperationProgress({ operation }: { operation: OperationView }) {
  const { t, locale } = useI18n();
  return (
    <div className="operation" aria-live="polite">
      <div className="operation-line">
        <span>{operationText(t, operation, locale)}</span>
        {operation.status !== 'failed' && <span>{Math.round(operation.percent)}%</span>}
      </div>
      <ProgressBar value={operation.status === 'failed' ? 1 : share(operation.percent, 100)} label={t('runtime.progress')} />
    </div>
  );
}

/** What the card lends to what an administrator adds to it (the node and the move, on a user's page). */
export interface RuntimeCardContext {
  runtime: RuntimeView;
  /** The operation shown: in flight, or the last one that failed. */
  operation: OperationView | null;
  /** Hands the card an operation started elsewhere (a move), so its progress shows at once. */
  report: (started: StartedOperation) => void;
}

/**
 * The runtime of one user as a card: its state, the actions allowed now, live progress from the
 * event stream, and the way into the workspace. Used on the home page and by admins per user.
 */
export function RuntimeCard({
  base,
  showOpen,
  title,
  onRuntimeChange,
  more,
}: {
  base: string;
  showOpen: boolean;
  /** Defaults to "Your workspace"; admins looking at someone else's runtime name it. */
  title?: string;
  onRuntimeChange?: (runtime: RuntimeView) => void;
  /** Shown below the card's facts once the runtime is known. */
  more?: (card: RuntimeCardContext) => ReactNode;
}) {
  const { t, locale } = useI18n();
  const [status, dispatch] = useReducer(applyRuntimeEvent, INITIAL_STATUS);
  const [actionError, setActionError] = useState<unknown>(null);
  const [pending, setPending] = useState<RuntimeAction | null>(null);
  const stream = useEventSource(`${base}/events`, {
    state: (data) => dispatch({ type: 'state', runtime: data as RuntimeView } satisfies RuntimeEvent),
    progress: (data) => dispatch({ type: 'progress', operation: data as OperationView } satisfies RuntimeEvent),
  });
  const { runtime, operation } = status;
  const allowed = allowedActions(runtime, operation);
  useEffect(() => {
    if (runtime) onRuntimeChange?.(runtime);
  }, [runtime, onRuntimeChange]);

  const report = useCallback((result: StartedOperation) => {
    dispatch({ type: 'state', runtime: result.runtime });
    if (result.operation) dispatch({ type: 'progress', operation: result.operation });
  }, []);

  const act = async (action: RuntimeAction) => {
    setPending(action);
    setActionError(null);
    try {
      report(await api.post<StartedOperation>(`${base.replace(/^\/api\/v1/, '')}/${action}`));
    } catch (err) {
      setActionError(err);
    } finally {
      setPending(null);
    }
  };

  const running = runtime?.state === 'running';
  const inFlight = operation && (operation.status === 'queued' || operation.status === 'running');
  return (
    <Card
      className="runtime-card"
      title={title ?? t('runtime.title')}
      actions={runtime && <span className={`badge badge-${runtime.state}`}>{stateLabel(t, runtime.state)}</span>}
    >
      {!runtime && <p role="status">{stream === 'reconnecting' ? t('runtime.reconnecting') : t('common.loading')}</p>}
      {runtime && (
        <>
          {runtime.state === 'absent' && <p>{t('runtime.absentHelp')}</p>}
          {runtime.state === 'stopped' && <p>{t('runtime.stoppedHelp')}</p>}
          {runtime.stoppedBy && (runtime.state === 'stopped' || runtime.state === 'failed') && (
            // The card with "Open" is the member's own; an administrator's view of it names no "you".
            <p className="stop-reason">{stopReasonText(t, runtime.stoppedBy, locale, showOpen)}</p>
          )}
          {runtime.state === 'failed' && (runtime.lastError || runtime.stateReason) && (
            <p className="error-note" role="alert">
              {t('runtime.failedBecause', { reason: runtime.lastError?.message ?? runtime.stateReason ?? '' })}
            </p>
          )}
          {operation && <OperationProgress operation={operation} />}
          {(runtime.configStale || runtime.outdatedImage) && running && !inFlight && <Notice tone="warning">{t('runtime.staleHelp')}</Notice>}
          <div className="actions">
            {showOpen && (
              <a
                className={`button button-primary${running ? '' : ' is-disabled'}`}
                href="/_clawloops/open"
                target="_blank"
                rel="noopener"
                aria-disabled={!running}
                onClick={(e) => {
                  if (!running) e.preventDefault();
                }}
              >
                {t('runtime.open')}
              </a>
            )}
            <Button variant={showOpen ? 'secondary' : 'primary'} disabled={!allowed.has('start')} busy={pending === 'start'} onClick={() => void act('start')}>
              {t('runtime.start')}
            </Button>
            <Button disabled={!allowed.has('stop')} busy={pending === 'stop'} onClick={() => void act('stop')}>
              {t('runtime.stop')}
            </Button>
            <Button disabled={!allowed.has('restart')} busy={pending === 'restart'} onClick={() => void act('restart')}>
              {t('runtime.restart')}
            </Button>
          </div>
          <ErrorNote error={actionError} />
          <dl className="facts">
            <dt>{t('runtime.image')}</dt>
            <dd>{runtime.image ?? runtime.configuredImage}</dd>
            <dt>{t('runtime.startedAt')}</dt>
            <dd>{formatDateTime(runtime.startedAt, locale)}</dd>
            <dt>{t('runtime.limits')}</dt>
            <dd>{t('runtime.limitsValue', { memory: formatBytes(runtime.limits.memoryBytes, locale), cpus: runtime.limits.cpus })}</dd>
          </dl>
          {more?.({ runtime, operation, report })}
          {running && <RuntimeStats base={base} />}
        </>
      )}
    </Card>
  );
}

function RuntimeStats({ base }: { base: string }) {
  const { t, locale } = useI18n();
  const [stats, setStats] = useState<ContainerStats | null>(null);
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const result = await api.get<RuntimeStats>(`${base.replace(/^\/api\/v1/, '')}/stats`);
        if (!stopped) setStats(result.stats);
      } catch {
        // Figures are a nicety: a failed read keeps the last ones.
      }
    };
    void load();
    const timer = setInterval(() => void load(), 10_000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [base]);
  if (!stats) return null;
  return (
    <div className="stats">
      <div>
        <span>{t('runtime.memory', { used: formatBytes(stats.memoryBytes, locale), limit: formatBytes(stats.memoryLimitBytes, locale) })}</span>
        <ProgressBar value={share(stats.memoryBytes, stats.memoryLimitBytes)} label={t('runtime.memoryLabel')} />
      </div>
      <div>
        <span>{t('runtime.cpu', { percent: stats.cpuPercent.toFixed(1) })}</span>
      </div>
    </div>
  );
}

const MAX_LOG_LINES = 2000;

/**
 * The runtime's log: the last lines, then new ones as they come while following. stderr is marked.
 * Give it a `key` that changes when the container starts (its startedAt) to follow the new one.
 */
export function LogViewer({ base }: { base: string }) {
  const { t } = useI18n();
  const [follow, setFollow] = useState(true);
  const [generation, setGeneration] = useState(0);
  return (
    <Card
      title={t('logs.title')}
      actions={
        <>
          <label className="checkbox">
            <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> {t('logs.follow')}
          </label>
          <Button variant="ghost" onClick={() => setGeneration((g) => g + 1)}>
            {t('logs.reload')}
          </Button>
        </>
      }
    >
      {/* A new key reopens the stream from the tail. */}
      <LogStream key={`${generation}:${follow}`} url={`${base}/logs?tail=200&follow=${follow ? 1 : 0}`} follow={follow} />
    </Card>
  );
}

function LogStream({ url, follow }: { url: string; follow: boolean }) {
  const { t } = useI18n();
  const [lines, setLines] = useState<LogLine[]>([]);
  const [ended, setEnded] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);
  const pending = useRef<LogLine[]>([]);
  const frame = useRef<number | null>(null);

  // Lines arrive in bursts: batch them into one render per animation frame.
  const flush = useCallback(() => {
    frame.current = null;
    const batch = pending.current;
    pending.current = [];
    setLines((old) => {
      const next = old.concat(batch);
      return next.length > MAX_LOG_LINES ? next.slice(next.length - MAX_LOG_LINES) : next;
    });
  }, []);
  useEffect(
    () => () => {
      if (frame.current !== null) cancelAnimationFrame(frame.current);
    },
    [],
  );
  const stream = useEventSource(url, {
    // Each (re)connect sends the tail again: start over rather than show it twice.
    [OPEN]: () => {
      pending.current = [];
      setLines([]);
      setEnded(null);
    },
    log: (data) => {
      pending.current.push(data as LogLine);
      if (frame.current === null) frame.current = requestAnimationFrame(flush);
    },
    end: (data) => setEnded((data as { reason?: string }).reason ?? ''),
    error: (data) => setEnded((data as { message?: string }).message ?? ''),
  });
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);
  return (
    <>
      <pre className="logs" ref={box} tabIndex={0} aria-label={t('logs.title')}>
        {lines.length === 0 && <span className="muted">{stream !== 'open' && ended === null ? t('logs.unavailable') : t('logs.empty')}</span>}
        {lines.map((line, i) => (
          <span key={i} className={line.stream === 'stderr' ? 'log-stderr' : undefined}>
            {line.stream === 'stderr' && <span className="visually-hidden">{t('logs.stderr')} </span>}
            {line.line}
            {'\n'}
          </span>
        ))}
      </pre>
      {ended !== null && <p className="muted">{t('logs.ended', { reason: ended })}</p>}
    </>
  );
}

/**
 * A runtime's card and, once it has a container, its log. Before that there is no log to ask
 * for (the server would answer 404). The log reopens on each new container: its key is the
 * container's start (or creation, until it starts).
 */
export function RuntimeWithLog({ base, showOpen, title, more }: { base: string; showOpen: boolean; title?: string; more?: (card: RuntimeCardContext) => ReactNode }) {
  const [runtime, setRuntime] = useState<RuntimeView | null>(null);
  const container = runtime?.startedAt ?? runtime?.createdAt ?? null;
  return (
    <>
      <RuntimeCard base={base} showOpen={showOpen} title={title} onRuntimeChange={setRuntime} more={more} />
      {container !== null && <LogViewer key={container} base={base} />}
    </>
  );
}

export function HomePage() {
  const { t } = useI18n();
  const { user } = useSession();
  return (
    <div id="home" className="stack">
      <h1>{t('home.greeting', { name: user.displayName || user.username })}</h1>
      <RuntimeWithLog base="/api/v1/runtime" showOpen />
    </div>
  );
}
