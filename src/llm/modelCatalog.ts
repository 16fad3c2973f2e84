import type { CatalogModel, ModelRepository } from '../db/repositories/modelRepository';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import type { Transactor } from '../domain/transactor';
import type { Clock } from '../lib/clock';
import { notFound } from '../lib/errors';
import type { SettingsStore } from '../lib/settingsStore';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import type { TokenUsage } from './metering';

export type ModelChange = Partial<Omit<CatalogModel, 'id'>>;

/**
 * The models runtimes may use, as an administrator set them: which are on, their names, sizes,
 * prices and the default. The live runtime settings follow every change, so the rendered
 * OpenClaw config (and with it each runtime's "stale config" flag) does too: running runtimes
 * get the new list at their next start or restart. With no models stored, the environment's
 * CLAWLOOPS_RUNTIME_MODELS applies, unpriced; with neither, no model may be called.
 */
export class ModelCatalog {
  private models: CatalogModel[] = [];
  private readonly envModels: string[];

  constructor(
    private readonly deps: { repository: ModelRepository; runtime: Pick<SettingsStore<RuntimeSettings>, 'get' | 'set'>; audit: AuditLog; transact: Transactor; clock: Clock },
  ) {
    this.envModels = [...deps.runtime.get().models];
    this.reload();
  }

  list(): CatalogModel[] {
    return this.models;
  }

  /** The models a member may use: enabled, default first. */
  available(): { id: string; name: string; default: boolean; contextWindow: number | null; maxTokens: number | null }[] {
    if (this.models.length === 0) return this.envModels.map((id, i) => ({ id, name: id, default: i === 0, contextWindow: null, maxTokens: null }));
    return this.models.filter((m) => m.enabled).map((m) => ({ id: m.id, name: m.displayName, default: m.isDefault, contextWindow: m.contextWindow, maxTokens: m.maxTokens }));
  }

  /** True when runtimes may call `id`: an enabled catalog model, or (no catalog) one of the environment's. Nothing else, ever. */
  allows(id: string): boolean {
    if (this.models.length > 0) return this.models.some((m) => m.id === id && m.enabled);
    return this.envModels.includes(id);
  }

  /** Whether an administrator's catalog (rather than the environment) decides the models. */
  get managed(): boolean {
    return this.models.length > 0;
  }

  upstreamOf(id: string): string {
    return this.models.find((m) => m.id === id)?.upstreamModel ?? id;
  }

  /** Whether calls to `id` cost anything: a catalog model with a price (environment models have none). */
  priced(id: string): boolean {
    const model = this.models.find((m) => m.id === id);
    return model !== undefined && (model.inputMicrodollarsPerMTok > 0 || model.outputMicrodollarsPerMTok > 0);
  }

  /** Microdollars, rounded up: however small, a priced call is never free. */
  costOf(id: string, usage: TokenUsage): number {
    const model = this.models.find((m) => m.id === id);
    if (!model) return 0;
    return Math.ceil((usage.promptTokens * model.inputMicrodollarsPerMTok + usage.completionTokens * model.outputMicrodollarsPerMTok) / 1e6);
  }

  save(actor: Actor, id: string, change: ModelChange, origin: RequestOrigin): CatalogModel {
    const before = this.models.find((m) => m.id === id) ?? null;
    const model: CatalogModel = {
      id,
      upstreamModel: id,
      displayName: id,
      enabled: true,
      isDefault: this.models.length === 0,
      contextWindow: null,
      maxTokens: null,
      inputMicrodollarsPerMTok: 0,
      outputMicrodollarsPerMTok: 0,
      ...before,
      ...change,
    };
    this.deps.transact(() => {
      this.deps.repository.save(model, this.deps.clock.now());
      this.deps.audit.record({ action: 'llm.model.save', actor, target: { type: 'model', id, label: model.displayName }, origin, detail: { before, after: model } });
    });
    this.reload();
    return model;
  }

  remove(actor: Actor, id: string, origin: RequestOrigin): void {
    this.deps.transact(() => {
      if (!this.deps.repository.remove(id)) throw notFound('MODEL_NOT_FOUND', `No model "${id}" is configured.`);
      this.deps.audit.record({ action: 'llm.model.remove', actor, target: { type: 'model', id, label: id }, origin });
    });
    this.reload();
  }

  private reload(): void {
    this.models = this.deps.repository.list();
    const available = this.available();
    this.deps.runtime.set({
      models: [...available.filter((m) => m.default), ...available.filter((m) => !m.default)].map((m) => m.id),
      modelDetails: Object.fromEntries(available.map((m) => [m.id, { name: m.name, contextWindow: m.contextWindow, maxTokens: m.maxTokens }])),
    });
  }
}
