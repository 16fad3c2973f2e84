import { api } from '../api/client';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { useResource } from '../ui/useResource';
import { Button, Card, EmptyState, ErrorNote, Notice, ProgressBar } from '../ui/ui';
import type { NodesOverview } from './adminTypes';
import { Badge, usePolling } from './common';
import { userPath } from './logic';
import { nodesPageView, type Marker } from './nodes';

/** How often the page asks again while it is shown (the tab visible). */
const REFRESH_MS = 5_000;

/** One GET /admin/nodes, shared by the Nodes page and the user page's runtime card. */
export function useNodesOverview(key: string) {
  return useResource((signal) => api.get<NodesOverview>('/admin/nodes', { signal }), key);
}

/** A node's status as a badge: its symbol says what the colour says, and the words say it plainly. */
export function NodeMarker({ marker }: { marker: Marker }) {
  return (
    <Badge tone={marker.tone}>
      <span aria-hidden="true" className="node-symbol">
        {marker.symbol}
      </span>{' '}
      {marker.text}
    </Badge>
  );
}

/**
 * The swarm's nodes (status, memory reserved of total, runtimes pinned and running) and the node
 * each runtime is on, refreshed every 5 s; with one machine (the docker backend), that in words.
 * Moving a runtime is on its user's page, next to the runtime's card.
 */
export function NodesPage() {
  const { t, locale } = useI18n();
  const nodes = useNodesOverview('admin-nodes');
  const data = nodes.data;
  // One machine does not change while the server runs: no need to keep asking.
  usePolling(() => void nodes.reload(), data?.backend === 'docker' ? 60_000 : REFRESH_MS);
  const view = data ? nodesPageView(data, t, locale) : null;

  return (
    <div className="stack">
      <div className="admin-title">
        <h1>{t('admin.nodes.title')}</h1>
        <Button variant="ghost" onClick={() => void nodes.reload()}>
          {t('admin.common.refresh')}
        </Button>
      </div>
      <ErrorNote error={nodes.error} />
      {!view && nodes.loading && <p role="status">{t('common.loading')}</p>}
      {view?.backend === 'docker' && (
        <Card>
          <div data-testid="nodes-single-host">
            <EmptyState title={view.title}>{view.body}</EmptyState>
          </div>
        </Card>
      )}
      {view?.backend === 'swarm' && (
        <>
          <p className="muted">{t('admin.nodes.intro')}</p>
          {view.stranded && <Notice tone="warning">{view.stranded}</Notice>}
          <Card title={t('admin.nodes.nodesCard')}>
            <p className="muted small" data-testid="nodes-summary">
              {view.summary}
            </p>
            {view.nodes.length === 0 ? (
              <EmptyState title={t('admin.nodes.noNodes')} />
            ) : (
              <div className="table-wrap">
                <table className="admin-table nodes-table">
                  <thead>
                    <tr>
                      <th scope="col">{t('admin.nodes.node')}</th>
                      <th scope="col">{t('admin.nodes.status')}</th>
                      <th scope="col">{t('admin.nodes.memory')}</th>
                      <th scope="col">{t('admin.nodes.runtimes')}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.nodes.map((node) => (
                      <tr key={node.id} data-testid="node-row" data-hostname={node.hostname} data-usable={node.usable}>
                        <th scope="row" className="node-name">
                          <strong>{node.hostname}</strong>
                          <div className="muted small">{node.role}</div>
                        </th>
                        <td className="node-status">
                          <div className="admin-markers">
                            <NodeMarker marker={node.state} />
                            <NodeMarker marker={node.availability} />
                          </div>
                          <div className={`small ${node.usable ? 'muted' : 'node-warning'}`}>{node.summary}</div>
                        </td>
                        <td className="node-memory">
                          <ProgressBar value={node.memory.share} label={node.memoryLabel} />
                          <div className={`small${node.memory.over ? ' node-warning' : ''}`}>{node.memory.text}</div>
                        </td>
                        <td className="nowrap">{node.runtimes}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
          <Card title={t('admin.nodes.runtimesCard')}>
            {view.runtimes.length === 0 ? (
              <EmptyState title={t('admin.nodes.noRuntimes')} />
            ) : (
              <>
                <p className="muted small">{t('admin.nodes.runtimesIntro')}</p>
                <div className="table-wrap">
                  <table className="admin-table">
                    <thead>
                      <tr>
                        <th scope="col">{t('admin.runtimes.user')}</th>
                        <th scope="col">{t('admin.nodes.node')}</th>
                      </tr>
                    </thead>
                    <tbody>
                      {view.runtimes.map((r) => (
                        <tr key={r.runtimeId} data-testid="node-runtime-row" data-username={r.username}>
                          <td>
                            <Link to={userPath(r.userId)}>{r.username}</Link>
                          </td>
                          <td>
                            <span className={r.placement.kind === 'node' ? undefined : 'muted'}>{r.where}</span>
                            {r.markers.length > 0 && (
                              <div className="admin-markers">
                                {r.markers.map((marker) => (
                                  <NodeMarker key={marker.text} marker={marker} />
                                ))}
                              </div>
                            )}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </>
            )}
          </Card>
        </>
      )}
    </div>
  );
}
