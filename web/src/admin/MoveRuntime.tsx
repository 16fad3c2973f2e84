import { useEffect, useId, useReducer, useRef, useState } from 'react';
import { api } from '../api/client';
import type { OperationView, StartedOperation } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { Modal } from '../files/Modal';
import { OperationProgress, type RuntimeCardContext } from '../pages/HomePage';
import { Button, ErrorNote, Notice } from '../ui/ui';
import type { NodeView } from './adminTypes';
import { SelectField, usePolling } from './common';
import { sectionPath } from './logic';
import { initialMove, isUsable, moveProgress, moveReducer, moveSubmission, moveTargets, nodeMarkers, nodeSummary, placementOf, placementText, sendMove, targetLabel, type Placement } from './nodes';
import { NodeMarker, useNodesOverview } from './NodesPage';

/**
 * On a user's page, inside their runtime's card: the node the runtime is on (with the node's
 * status when it cannot run it), and, on a swarm, "Move to another node". Nothing with one
 * machine (the docker backend).
 */
export function RuntimeNode({ userId, username, card }: { userId: string; username: string; card: RuntimeCardContext }) {
  const { t } = useI18n();
  const overview = useNodesOverview(`admin-nodes:${userId}`);
  const [moving, setMoving] = useState(false);
  const busy = card.operation !== null && (card.operation.status === 'queued' || card.operation.status === 'running');
  // Faster while an operation runs: a move changes the node at its end.
  usePolling(() => void overview.reload(), busy ? 3_000 : 15_000);
  const data = overview.data;
  if (!data) return <ErrorNote error={overview.error} />;
  if (data.backend !== 'swarm') return null;

  const placement = placementOf(data.runtimes.find((r) => r.userId === userId)?.node, data.nodes);
  const markers = placement.kind === 'node' ? nodeMarkers(t, placement.node) : [];
  return (
    <div className="runtime-node" data-testid="runtime-node">
      <dl className="facts">
        <dt>{t('admin.move.node')}</dt>
        <dd>
          <span data-testid="runtime-node-name">{placementText(t, placement)}</span>{' '}
          {markers.map((marker) => (
            <NodeMarker key={marker.text} marker={marker} />
          ))}{' '}
          <Link to={sectionPath('nodes')} className="small">
            {t('admin.nodes.allNodes')}
          </Link>
        </dd>
      </dl>
      {placement.kind === 'node' && !isUsable(placement.node) && (
        <Notice tone="warning">{t('admin.move.nodeUnavailable', { hostname: placement.node.hostname, summary: nodeSummary(t, placement.node) })}</Notice>
      )}
      <ErrorNote error={overview.error} />
      {/* On shared storage a runtime runs on any node, and one never made has no data: nothing to move. */}
      {placement.kind !== 'any' && card.runtime.id !== null && (
        <div className="actions">
          <Button disabled={busy} onClick={() => setMoving(true)} aria-label={t('admin.move.buttonFor', { username })} data-testid="move-open">
            {t('admin.move.button')}
          </Button>
        </div>
      )}
      {moving && (
        <MoveRuntimeDialog
          userId={userId}
          username={username}
          placement={placement}
          nodes={data.nodes}
          operation={card.operation}
          onStarted={card.report}
          onDone={() => void overview.reload()}
          onClose={() => setMoving(false)}
        />
      )}
    </div>
  );
}

/**
 * Picks a ready and active node other than the runtime's own and moves the runtime there, its data
 * copied by default. When the data cannot be copied (SOURCE_NODE_DOWN: its node is down) it offers
 * the move without the data, once the administrator has confirmed the workspace starts empty
 * there; unticking the copy asks the same. Once started, the progress is the operation's, from
 * the runtime's event stream (the card's).
 */
export function MoveRuntimeDialog({
  userId,
  username,
  placement,
  nodes,
  operation,
  onStarted,
  onDone,
  onClose,
}: {
  userId: string;
  username: string;
  placement: Placement;
  nodes: readonly NodeView[];
  /** The runtime's operation as its card shows it. */
  operation: OperationView | null;
  onStarted: (started: StartedOperation) => void;
  onDone: () => void;
  onClose: () => void;
}) {
  const { t, locale } = useI18n();
  const copyId = useId();
  const ackId = useId();
  // The targets as they were when the dialog opened: a refresh must not change the pick under the cursor.
  const [targets] = useState(() => moveTargets(nodes, placement));
  const [state, dispatch] = useReducer(moveReducer, targets, initialMove);
  const submission = moveSubmission(state);
  const target = targets.find((n) => n.id === state.node) ?? null;
  const hostname = target?.hostname ?? state.node;
  const progress = moveProgress(state, operation);
  const sending = state.phase === 'sending';

  // Once per completion, whatever the parent passes as onDone meanwhile.
  const done = useRef(onDone);
  done.current = onDone;
  useEffect(() => {
    if (progress === 'done') done.current();
  }, [progress]);

  const send = async () => {
    if (!submission) return;
    dispatch({ type: 'send' });
    const { event, started } = await sendMove(userId, submission, (path, body) => api.post<StartedOperation>(path, body));
    if (started) onStarted(started);
    dispatch(event);
  };

  const withoutData = !state.copy;
  const acknowledgement = (
    <div className="move-warning" data-testid="move-empty-warning">
      <p>
        <strong>{t('admin.move.emptyWarning', { username, hostname })}</strong>
      </p>
      <label className="checkbox" htmlFor={ackId}>
        <input
          id={ackId}
          type="checkbox"
          checked={state.acknowledged}
          disabled={sending}
          onChange={(e) => dispatch({ type: 'acknowledge', acknowledged: e.target.checked })}
          data-testid="move-acknowledge"
        />{' '}
        {t('admin.move.acknowledge', { hostname })}
      </label>
    </div>
  );

  const title = state.phase === 'withoutData' || (sending && state.from === 'withoutData') ? t('admin.move.withoutDataTitle', { username }) : t('admin.move.title', { username });
  return (
    <Modal title={title} onClose={onClose} id="move-runtime">
      <div className="dialog-body stack" data-testid="move-dialog" data-phase={state.phase}>
        {(state.phase === 'choose' || (sending && state.from === 'choose')) && (
          <>
            <p>{t('admin.move.now', { place: placementText(t, placement) })}</p>
            {targets.length === 0 ? (
              <Notice tone="warning">{t('admin.move.noTargets')}</Notice>
            ) : (
              <>
                <SelectField
                  label={t('admin.move.target')}
                  name="node"
                  value={state.node}
                  onChange={(node) => dispatch({ type: 'pick', node })}
                  options={targets.map((node) => ({ value: node.id, label: targetLabel(t, node, locale) }))}
                />
                <div className="field field-checkbox">
                  <label className="checkbox" htmlFor={copyId}>
                    <input
                      id={copyId}
                      type="checkbox"
                      checked={state.copy}
                      disabled={sending}
                      onChange={(e) => dispatch({ type: 'copy', copy: e.target.checked })}
                      aria-describedby={`${copyId}-hint`}
                      data-testid="move-copy"
                    />{' '}
                    {t('admin.move.copy')}
                  </label>
                  <small id={`${copyId}-hint`} className="hint">
                    {t('admin.move.copyHint')}
                  </small>
                </div>
                {withoutData && acknowledgement}
                <p className="muted small">{t('admin.move.stays')}</p>
              </>
            )}
          </>
        )}
        {(state.phase === 'withoutData' || (sending && state.from === 'withoutData')) && (
          <>
            {state.sourceDown && (
              <p className="error-note" role="alert">
                {state.sourceDown}
              </p>
            )}
            {acknowledgement}
          </>
        )}
        {state.phase === 'started' && (
          <div data-testid="move-progress" data-progress={progress ?? ''}>
            {progress === 'running' && <p>{t('admin.move.moving', { hostname })}</p>}
            {progress !== 'done' && operation && <OperationProgress operation={operation} />}
            {progress === 'failed' && <p className="error-note">{t('admin.move.failed')}</p>}
            {progress === 'done' && <Notice tone="success">{t(state.copy ? 'admin.move.done' : 'admin.move.doneEmpty', { hostname })}</Notice>}
          </div>
        )}
        <ErrorNote error={state.error} />
      </div>
      <div className="actions">
        <Button onClick={onClose}>{t(state.phase === 'started' ? 'common.close' : 'common.cancel')}</Button>
        {state.phase !== 'started' && targets.length > 0 && (
          <Button variant={withoutData ? 'danger' : 'primary'} busy={sending} disabled={!submission} onClick={() => void send()} data-testid="move-submit">
            {t(withoutData ? 'admin.move.submitWithoutData' : 'admin.move.submit')}
          </Button>
        )}
      </div>
    </Modal>
  );
}
