import { createContext, useContext, useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { Button, ConfirmDialog, EmptyState, ErrorNote, Notice, Pagination } from '../ui/ui';
import type { Resource } from '../ui/useResource';
import type { ModelLimits, Page } from '../api/types';
import { formatNumber, formatUsd } from '../lib/format';
import type { BulkOutcome, LimitField, RangeProblem } from './logic';
import { userPath } from './logic';

// ---- One confirmation dialog for all admin pages ----

export interface ConfirmRequest {
  title: string;
  body: ReactNode;
  confirmLabel: string;
  /** The action stays disabled until this is typed. */
  typeToConfirm?: string;
  /** A failure is shown in the dialog, which then stays open. */
  action: () => Promise<void>;
}

const ConfirmContext = createContext<(request: ConfirmRequest) => void>(() => undefined);

/** Asks before a destructive action: `confirm({title, body, confirmLabel, action})`. */
export function useConfirm(): (request: ConfirmRequest) => void {
  return useContext(ConfirmContext);
}

export function ConfirmProvider({ children }: { children: ReactNode }) {
  const [request, setRequest] = useState<ConfirmRequest | null>(null);
  const [open, setOpen] = useState(false);
  const ask = useRef((next: ConfirmRequest) => {
    setRequest(next);
    setOpen(true);
  });
  return (
    <ConfirmContext.Provider value={ask.current}>
      {children}
      <ConfirmDialog
        open={open}
        title={request?.title ?? ''}
        confirmLabel={request?.confirmLabel ?? ''}
        typeToConfirm={request?.typeToConfirm}
        onConfirm={async () => {
          if (request) await request.action();
        }}
        onClose={() => setOpen(false)}
      >
        {request?.body}
      </ConfirmDialog>
    </ConfirmContext.Provider>
  );
}

// ---- Polling ----

/** Calls `tick` every `ms` while the page is shown and the tab is visible. */
export function usePolling(tick: () => void, ms: number): void {
  const current = useRef(tick);
  current.current = tick;
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') current.current();
    }, ms);
    return () => clearInterval(timer);
  }, [ms]);
}

// ---- Small pieces ----

/** A search box that reports what was typed once typing pauses. */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

export function Badge({ tone = 'neutral', children }: { tone?: 'neutral' | 'ok' | 'warn' | 'bad' | 'info'; children: ReactNode }) {
  return <span className={`badge admin-badge-${tone}`}>{children}</span>;
}

const RANGE_PROBLEMS: Record<RangeProblem, MessageKey> = {
  invalid: 'admin.range.invalid',
  order: 'admin.range.order',
  tooLong: 'admin.range.tooLong',
};

export function rangeProblemKey(problem: RangeProblem): MessageKey {
  return RANGE_PROBLEMS[problem];
}

/** What a bulk stop or restart did, user by user: who went ahead, and each refusal in words. */
export function BulkOutcomeView({ outcome, action, onDismiss }: { outcome: BulkOutcome; action: 'stop' | 'restart'; onDismiss: () => void }) {
  const { t } = useI18n();
  return (
    <div className="bulk-outcome" aria-live="polite">
      {outcome.succeeded.length > 0 && (
        <Notice tone="success">
          {t(action === 'stop' ? 'admin.bulk.stopped' : 'admin.bulk.restarted', { count: outcome.succeeded.length, names: outcome.succeeded.join(', ') })}
        </Notice>
      )}
      {outcome.succeeded.length === 0 && outcome.failed.length === 0 && <Notice>{t('admin.bulk.nothing')}</Notice>}
      {outcome.failed.length > 0 && (
        <div className="error-note" role="alert">
          <p className="bulk-failed-title">{t('admin.bulk.failed', { count: outcome.failed.length })}</p>
          <ul>
            {outcome.failed.map((f) => (
              <li key={f.userId}>
                <Link to={userPath(f.userId)}>{f.username}</Link>: {f.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <Button variant="ghost" onClick={onDismiss}>
        {t('common.close')}
      </Button>
    </div>
  );
}

/** Horizontal bars with their values written out, in plain markup (no SVG: it reflows on a phone). */
export function BarList({ rows, label }: { rows: { key: string; label: ReactNode; value: number; text: string }[]; label: string }) {
  const max = Math.max(0, ...rows.map((r) => r.value));
  return (
    <ul className="bar-list" aria-label={label}>
      {rows.map((row) => (
        <li key={row.key}>
          <span className="bar-list-label">{row.label}</span>
          <span className="bar-list-track" aria-hidden="true">
            <span className="bar-list-fill" style={{ width: `${max > 0 ? Math.max(1, (row.value / max) * 100) : 0}%` }} />
          </span>
          <span className="bar-list-value">{row.text}</span>
        </li>
      ))}
    </ul>
  );
}

/** A select field with a label (the shared Field is for inputs only). */
export function SelectField({
  label,
  name,
  value,
  defaultValue,
  onChange,
  options,
}: {
  label: string;
  name?: string;
  value?: string;
  defaultValue?: string;
  onChange?: (value: string) => void;
  options: { value: string; label: string }[];
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} name={name} value={value} defaultValue={defaultValue} onChange={onChange ? (e) => onChange(e.target.value) : undefined}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </div>
  );
}

/** A multi-line text field with a label (the egress lists: one entry a line). */
export function TextAreaField({ label, name, defaultValue, hint, rows = 4 }: { label: string; name: string; defaultValue?: string; hint?: string; rows?: number }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        name={name}
        rows={rows}
        defaultValue={defaultValue}
        spellCheck={false}
        autoCapitalize="none"
        autoComplete="off"
        className="entries-input"
        aria-describedby={hint ? `${id}-hint` : undefined}
      />
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

export function CheckboxField({ label, name, defaultChecked, hint }: { label: string; name: string; defaultChecked?: boolean; hint?: string }) {
  const id = useId();
  return (
    <div className="field field-checkbox">
      <label className="checkbox" htmlFor={id}>
        <input id={id} type="checkbox" name={name} defaultChecked={defaultChecked} aria-describedby={hint ? `${id}-hint` : undefined} /> {label}
      </label>
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

// ---- Model limits ----

export const LIMIT_LABELS: Record<LimitField, MessageKey> = {
  requestsPerMinute: 'admin.limits.requestsPerMinute',
  concurrentRequests: 'admin.limits.concurrentRequests',
  monthlyTokens: 'admin.limits.monthlyTokens',
  monthlyBudgetUsd: 'admin.limits.monthlyBudget',
};

/** A limit as words: 0 is "no limit"; the budget is in dollars. */
export function useLimitText(): (field: LimitField, limits: ModelLimits) => string {
  const { t, locale } = useI18n();
  return (field, limits) => {
    const value = field === 'monthlyBudgetUsd' ? limits.monthlyCostMicrodollars : limits[field];
    if (value === 0) return t('admin.limits.none');
    return field === 'monthlyBudgetUsd' ? formatUsd(value, locale) : formatNumber(value, locale);
  };
}

/**
 * A paginated server list as the admin pages show it: its error in words, a loading line, an
 * empty state saying what to do next, the total, the table, and the page links.
 */
export function PagedTable<T>({
  resource,
  empty,
  count,
  className,
  head,
  row,
  limit,
  offset,
  onOffset,
}: {
  resource: Resource<Page<T>>;
  empty: { title: string; body?: string };
  /** The "N users" line; none when omitted. */
  count?: (total: number) => string;
  className?: string;
  head: ReactNode;
  row: (item: T) => ReactNode;
  limit: number;
  offset: number;
  onOffset: (offset: number) => void;
}) {
  const { t } = useI18n();
  const data = resource.data;
  return (
    <>
      <ErrorNote error={resource.error} />
      {!data && resource.loading && <p role="status">{t('common.loading')}</p>}
      {data && data.items.length === 0 && <EmptyState title={empty.title}>{empty.body}</EmptyState>}
      {data && data.items.length > 0 && (
        <>
          {count && (
            <p className="muted" role="status">
              {count(data.total)}
            </p>
          )}
          <div className="table-wrap">
            <table className={`admin-table${className ? ` ${className}` : ''}`}>
              <thead>{head}</thead>
              <tbody>{data.items.map(row)}</tbody>
            </table>
          </div>
          <Pagination total={data.total} limit={limit} offset={offset} onChange={onOffset} />
        </>
      )}
    </>
  );
}
