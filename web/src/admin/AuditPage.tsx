import { useState, type FormEvent } from 'react';
import { api, query } from '../api/client';
import type { AuditEntry, Page } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Button, Card } from '../ui/ui';
import { PagedTable, rangeProblemKey } from './common';
import { openRangeQuery, repeatCount, userPath } from './logic';

const LIMIT = 50;

interface Filters {
  actor: string;
  action: string;
  from: string;
  to: string;
}

const NO_FILTERS: Filters = { actor: '', action: '', from: '', to: '' };

/** After the action of a row that stands for repeated events: how many. */
function RepeatNote({ detail }: { detail: unknown }) {
  const { t } = useI18n();
  const count = repeatCount(detail);
  if (count === null) return null;
  return (
    <>
      {' '}
      <span className="muted small">{t('admin.audit.repeats', { count })}</span>
    </>
  );
}

/** The audit log, newest first, filtered by who, what (`login.*` for a prefix) and when. */
export function AuditPage() {
  const { t, locale } = useI18n();
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<{ actor?: string; action?: string; from?: string; to?: string }>({});
  const [offset, setOffset] = useState(0);
  const [problem, setProblem] = useState<string | null>(null);
  const q = query({ ...filters, limit: LIMIT, offset });
  const audit = useResource((signal) => api.get<Page<AuditEntry>>(`/admin/audit${q}`, { signal }), q);
  const filtered = Object.values(filters).some((v) => v);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const range = openRangeQuery({ from: draft.from, to: draft.to });
    if (!range.ok) {
      setProblem(t(rangeProblemKey(range.problem)));
      return;
    }
    setProblem(null);
    setOffset(0);
    setFilters({ actor: draft.actor.trim() || undefined, action: draft.action.trim() || undefined, from: range.from, to: range.to });
  };

  const clear = () => {
    setDraft(NO_FILTERS);
    setFilters({});
    setOffset(0);
    setProblem(null);
  };

  return (
    <div className="stack">
      <h1>{t('admin.audit.title')}</h1>
      <Card>
        <form className="admin-filters" onSubmit={apply}>
          <div className="field">
            <label htmlFor="audit-actor">{t('admin.audit.actor')}</label>
            <input id="audit-actor" value={draft.actor} onChange={(e) => setDraft({ ...draft, actor: e.target.value })} maxLength={100} autoComplete="off" />
          </div>
          <div className="field">
            <label htmlFor="audit-action">{t('admin.audit.action')}</label>
            <input
              id="audit-action"
              value={draft.action}
              onChange={(e) => setDraft({ ...draft, action: e.target.value })}
              maxLength={100}
              placeholder="login.*"
              aria-describedby="audit-action-hint"
              autoComplete="off"
            />
          </div>
          <div className="field">
            <label htmlFor="audit-from">{t('admin.range.from')}</label>
            <input id="audit-from" type="date" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="audit-to">{t('admin.range.to')}</label>
            <input id="audit-to" type="date" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
          </div>
          <div className="admin-filter-buttons">
            <Button type="submit" variant="primary">
              {t('admin.range.apply')}
            </Button>
            <Button onClick={clear} disabled={!filtered && draft === NO_FILTERS}>
              {t('admin.audit.clear')}
            </Button>
          </div>
        </form>
        <p id="audit-action-hint" className="muted small">
          {t('admin.audit.actionHint')}
        </p>
        <p className="muted small">{t('admin.range.utc')}</p>
        {problem && (
          <p className="error-note" role="alert">
            {problem}
          </p>
        )}
      </Card>

      <Card>
        <PagedTable
          resource={audit}
          empty={filtered ? { title: t('admin.audit.noMatch'), body: t('admin.audit.noMatchBody') } : { title: t('admin.audit.empty'), body: t('admin.audit.emptyBody') }}
          count={(total) => t('admin.audit.count', { count: total })}
          className="admin-audit"
          limit={LIMIT}
          offset={offset}
          onOffset={setOffset}
          head={
            <tr>
              <th scope="col">{t('admin.audit.time')}</th>
              <th scope="col">{t('admin.audit.actor')}</th>
              <th scope="col">{t('admin.audit.action')}</th>
              <th scope="col">{t('admin.audit.target')}</th>
              <th scope="col" className="hide-narrow">
                {t('admin.audit.ip')}
              </th>
              <th scope="col">{t('admin.audit.detail')}</th>
            </tr>
          }
          row={(entry) => (
            <tr key={entry.id}>
              <td className="nowrap">{formatDateTime(entry.at, locale)}</td>
              <td>{entry.actor ? entry.actor.username : <span className="muted">{t('admin.audit.system')}</span>}</td>
              <td>
                <code>{entry.action}</code>
                <RepeatNote detail={entry.detail} />
              </td>
              <td>
                {entry.target ? (
                  <>
                    <span className="muted small">{entry.target.type}</span>{' '}
                    {entry.target.type === 'user' && entry.target.id ? (
                      <Link to={userPath(entry.target.id)}>{entry.target.label ?? entry.target.id}</Link>
                    ) : (
                      (entry.target.label ?? entry.target.id ?? '—')
                    )}
                  </>
                ) : (
                  '—'
                )}
              </td>
              <td className="hide-narrow">{entry.ip ?? '—'}</td>
              <td>
                {entry.detail === null || entry.detail === undefined ? (
                  '—'
                ) : (
                  <details className="admin-detail">
                    <summary>{t('admin.audit.show')}</summary>
                    <pre>{JSON.stringify(entry.detail, null, 2)}</pre>
                  </details>
                )}
              </td>
            </tr>
          )}
        />
      </Card>
    </div>
  );
}
