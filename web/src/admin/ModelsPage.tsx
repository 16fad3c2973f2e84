import { Fragment, useEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import { useSession } from '../app/session';
import { useI18n } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatNumber, formatUsd } from '../lib/format';
import { useResource } from '../ui/useResource';
import { AsyncForm, Button, Card, EmptyState, ErrorNote, Field, Notice } from '../ui/ui';
import type { AdminModels, BulkAnswer, CatalogModel, LimitsView, ModelChangeAnswer } from './adminTypes';
import { Badge, BulkOutcomeView, CheckboxField, LIMIT_LABELS, useConfirm, useLimitText } from './common';
import { bulkOutcome, LIMIT_FIELDS, modelBody, upstreamNotInCatalog, usdOf, type BulkOutcome, type ModelField } from './logic';

const FIELD_LABELS: Record<ModelField, MessageKey> = {
  id: 'admin.models.id',
  upstreamModel: 'admin.models.upstreamModel',
  displayName: 'admin.models.displayName',
  contextWindow: 'admin.models.contextWindow',
  maxTokens: 'admin.models.maxTokens',
  inputPricePerMTok: 'admin.models.inputPrice',
  outputPricePerMTok: 'admin.models.outputPrice',
};

/** What the editor edits: a catalog model, or a new one (prefilled from the upstream's list). */
type Editing = { kind: 'edit'; model: CatalogModel } | { kind: 'new'; id: string };

export function ModelsPage() {
  const { t, locale } = useI18n();
  const confirm = useConfirm();
  const models = useResource((signal) => api.get<AdminModels>('/admin/models', { signal }), 'admin-models');
  const [editing, setEditing] = useState<Editing | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<BulkOutcome | null>(null);
  const data = models.data;
  const offered = data ? upstreamNotInCatalog(data.upstream, data.models) : [];
  const usd = (micro: number) => formatUsd(micro, locale);
  const tokens = (n: number | null) => (n === null ? '—' : formatNumber(n, locale));

  const remove = (model: CatalogModel) =>
    confirm({
      title: t('admin.models.deleteTitle', { name: model.displayName }),
      body: <p>{t('admin.models.deleteBody', { id: model.id })}</p>,
      confirmLabel: t('admin.models.delete'),
      action: async () => {
        await api.delete<ModelChangeAnswer>(`/admin/models/${encodeURIComponent(model.id)}`);
        if (editing?.kind === 'edit' && editing.model.id === model.id) setEditing(null);
        setSaved(null);
        await models.reload();
      },
    });

  const restartStale = () => {
    const stale = data?.staleRuntimes ?? [];
    confirm({
      title: t('admin.runtimes.restartStaleTitle', { count: stale.length }),
      body: (
        <>
          <p>{t('admin.runtimes.restartBody')}</p>
          <p className="muted">{stale.map((r) => r.username).join(', ')}</p>
        </>
      ),
      confirmLabel: t('admin.runtimes.restartStale'),
      action: async () => {
        const answer = await api.post<BulkAnswer>('/admin/runtimes/restart', { stale: true });
        setOutcome(bulkOutcome(answer.results, new Map(stale.map((r) => [r.userId, r.username]))));
        await models.reload();
      },
    });
  };

  return (
    <div className="stack">
      <div className="admin-title">
        <h1>{t('admin.models.title')}</h1>
        <Button variant="primary" onClick={() => setEditing({ kind: 'new', id: '' })}>
          {t('admin.models.add')}
        </Button>
      </div>
      <p className="muted">{t('admin.models.intro')}</p>
      <ErrorNote error={models.error} />
      {!data && models.loading && <p role="status">{t('common.loading')}</p>}

      {outcome && <BulkOutcomeView outcome={outcome} action="restart" onDismiss={() => setOutcome(null)} />}
      {data && data.staleRuntimes.length > 0 && (
        <div className="notice notice-warning admin-stale" role="status">
          <span>{t('admin.models.stale', { count: data.staleRuntimes.length, names: data.staleRuntimes.map((r) => r.username).join(', ') })}</span>
          <Button onClick={restartStale}>{t('admin.models.restartStale')}</Button>
        </div>
      )}

      {editing && (
        <ModelEditor
          key={editing.kind === 'edit' ? `edit:${editing.model.id}` : `new:${editing.id}`}
          editing={editing}
          upstream={data?.upstream ?? []}
          existing={data?.models.map((m) => m.id) ?? []}
          onCancel={() => setEditing(null)}
          onSaved={async (id) => {
            setEditing(null);
            setSaved(id);
            await models.reload();
          }}
        />
      )}
      {saved && <Notice tone="success">{t('admin.models.saved', { id: saved })}</Notice>}

      {data && (
        <Card title={t('admin.models.catalog')}>
          {data.models.length === 0 ? (
            <EmptyState title={t('admin.models.empty')}>{t('admin.models.emptyBody')}</EmptyState>
          ) : (
            <div className="table-wrap">
              <table className="admin-table">
                <thead>
                  <tr>
                    <th scope="col">{t('admin.models.model')}</th>
                    <th scope="col" className="hide-narrow">
                      {t('admin.models.upstreamModel')}
                    </th>
                    <th scope="col" className="num hide-narrow">
                      {t('admin.models.sizes')}
                    </th>
                    <th scope="col" className="num">
                      {t('admin.models.prices')}
                    </th>
                    <th scope="col">{t('admin.common.actions')}</th>
                  </tr>
                </thead>
                <tbody>
                  {data.models.map((m) => (
                    <tr key={m.id}>
                      <td>
                        <strong>{m.displayName}</strong> <code className="small">{m.id}</code>
                        <div className="admin-markers">
                          <Badge tone={m.enabled ? 'ok' : 'neutral'}>{t(m.enabled ? 'admin.models.enabled' : 'admin.models.disabled')}</Badge>
                          {m.isDefault && <Badge tone="info">{t('usage.default')}</Badge>}
                        </div>
                      </td>
                      <td className="hide-narrow">
                        <code>{m.upstreamModel}</code>
                      </td>
                      <td className="num hide-narrow">
                        {tokens(m.contextWindow)} / {tokens(m.maxTokens)}
                      </td>
                      <td className="num">
                        {usd(m.inputMicrodollarsPerMTok)} / {usd(m.outputMicrodollarsPerMTok)}
                      </td>
                      <td>
                        <div className="user-actions-buttons">
                          <Button variant="ghost" onClick={() => setEditing({ kind: 'edit', model: m })} aria-label={`${t('admin.models.edit')} ${m.id}`}>
                            {t('admin.models.edit')}
                          </Button>
                          <Button variant="ghost" className="button button-ghost admin-danger-text" onClick={() => remove(m)} aria-label={`${t('admin.models.delete')} ${m.id}`}>
                            {t('admin.models.delete')}
                          </Button>
                        </div>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>
      )}

      {data && (
        <Card title={t('admin.models.upstream')}>
          {data.upstreamError && (
            <p className="error-note" role="alert">
              {t('admin.models.upstreamError', { error: data.upstreamError })}
            </p>
          )}
          {!data.upstreamError && data.upstream === null && <p className="muted">{t('admin.models.upstreamUnknown')}</p>}
          {data.upstream !== null && offered.length === 0 && <p className="muted">{t('admin.models.upstreamAllAdded')}</p>}
          {offered.length > 0 && (
            <ul className="plain-list admin-offered">
              {offered.map((id) => (
                <li key={id}>
                  <code>{id}</code>
                  <Button variant="ghost" onClick={() => setEditing({ kind: 'new', id })} aria-label={t('admin.models.addNamed', { id })}>
                    {t('admin.models.addOne')}
                  </Button>
                </li>
              ))}
            </ul>
          )}
        </Card>
      )}

      <DefaultLimits />
    </div>
  );
}

function ModelEditor({
  editing,
  upstream,
  existing,
  onCancel,
  onSaved,
}: {
  editing: Editing;
  upstream: string[];
  existing: string[];
  onCancel: () => void;
  onSaved: (id: string) => Promise<void>;
}) {
  const { t } = useI18n();
  const box = useRef<HTMLDivElement>(null);
  const model = editing.kind === 'edit' ? editing.model : null;
  const newId = editing.kind === 'new' ? editing.id : '';
  useEffect(() => {
    box.current?.scrollIntoView({ block: 'nearest' });
    box.current?.querySelector<HTMLInputElement>('input:not([readonly])')?.focus();
  }, []);
  const price = (micro: number | undefined) => (micro === undefined ? '0' : String(usdOf(micro)));
  return (
    <div ref={box}>
      <Card
        title={model ? t('admin.models.editTitle', { name: model.displayName }) : t('admin.models.addTitle')}
        actions={
          <Button variant="ghost" onClick={onCancel}>
            {t('common.cancel')}
          </Button>
        }
      >
        <AsyncForm
          submitLabel={t('common.save')}
          onSubmit={async (values) => {
            const parsed = modelBody(model ? { ...values, id: model.id } : values);
            if (!parsed.ok) throw new Error(t('admin.models.invalid', { field: t(FIELD_LABELS[parsed.field]) }));
            // Saving under an id the catalog has would overwrite that model.
            if (!model && existing.includes(parsed.id)) throw new Error(t('admin.models.exists', { id: parsed.id }));
            await api.put(`/admin/models/${encodeURIComponent(parsed.id)}`, parsed.body);
            await onSaved(parsed.id);
          }}
        >
          <datalist id="admin-upstream-models">
            {upstream.map((id) => (
              <option key={id} value={id} />
            ))}
          </datalist>
          <div className="admin-form-grid">
            <Field
              label={t('admin.models.id')}
              name="id"
              defaultValue={model?.id ?? newId}
              readOnly={model !== null}
              required
              list="admin-upstream-models"
              autoComplete="off"
              hint={t(model ? 'admin.models.idFixedHint' : 'admin.models.idHint')}
            />
            <Field
              label={t('admin.models.upstreamModel')}
              name="upstreamModel"
              defaultValue={model?.upstreamModel ?? newId}
              list="admin-upstream-models"
              autoComplete="off"
              hint={t('admin.models.upstreamModelHint')}
            />
            <Field label={t('admin.models.displayName')} name="displayName" defaultValue={model?.displayName ?? newId} maxLength={100} autoComplete="off" />
            <Field
              label={t('admin.models.contextWindow')}
              name="contextWindow"
              type="number"
              inputMode="numeric"
              min={1}
              max={10_000_000}
              step={1}
              defaultValue={model?.contextWindow ?? ''}
              hint={t('admin.models.tokensHint')}
            />
            <Field
              label={t('admin.models.maxTokens')}
              name="maxTokens"
              type="number"
              inputMode="numeric"
              min={1}
              max={10_000_000}
              step={1}
              defaultValue={model?.maxTokens ?? ''}
              hint={t('admin.models.tokensHint')}
            />
            <Field
              label={t('admin.models.inputPrice')}
              name="inputPricePerMTok"
              type="number"
              inputMode="decimal"
              min={0}
              max={10_000}
              step="any"
              defaultValue={price(model?.inputMicrodollarsPerMTok)}
              hint={t('admin.models.priceHint')}
            />
            <Field
              label={t('admin.models.outputPrice')}
              name="outputPricePerMTok"
              type="number"
              inputMode="decimal"
              min={0}
              max={10_000}
              step="any"
              defaultValue={price(model?.outputMicrodollarsPerMTok)}
              hint={t('admin.models.priceHint')}
            />
          </div>
          <CheckboxField label={t('admin.models.enabledLabel')} name="enabled" defaultChecked={model?.enabled ?? true} hint={t('admin.models.enabledHint')} />
          <CheckboxField label={t('admin.models.defaultLabel')} name="isDefault" defaultChecked={model?.isDefault ?? false} hint={t('admin.models.defaultHint')} />
        </AsyncForm>
      </Card>
    </div>
  );
}

/**
 * The default limits come from the environment; the API shows them with any user's limits, so
 * they are read with the signed-in administrator's own.
 */
function DefaultLimits() {
  const { t } = useI18n();
  const { user } = useSession();
  const path = `/admin/users/${encodeURIComponent(user.id)}/model-limits`;
  const limits = useResource((signal) => api.get<LimitsView>(path, { signal }), path);
  const limitText = useLimitText();
  const defaults = limits.data?.defaults;
  return (
    <Card title={t('admin.models.defaults')}>
      <p className="muted">{t('admin.models.defaultsIntro')}</p>
      <ErrorNote error={limits.error} />
      {defaults && (
        <dl className="facts">
          {LIMIT_FIELDS.map((field) => (
            <Fragment key={field}>
              <dt>{t(LIMIT_LABELS[field])}</dt>
              <dd>{limitText(field, defaults)}</dd>
            </Fragment>
          ))}
        </dl>
      )}
    </Card>
  );
}
