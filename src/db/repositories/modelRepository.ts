import type { Db } from '../database';

export interface CatalogModel {
  id: string;
  upstreamModel: string;
  displayName: string;
  enabled: boolean;
  isDefault: boolean;
  contextWindow: number | null;
  maxTokens: number | null;
  /** Prices in millionths of a dollar per million tokens (integers: no float drift in sums). */
  inputMicrodollarsPerMTok: number;
  outputMicrodollarsPerMTok: number;
}

interface Row {
  id: string;
  upstream_model: string;
  display_name: string;
  enabled: number;
  is_default: number;
  context_window: number | null;
  max_tokens: number | null;
  input_microdollars_per_mtok: number;
  output_microdollars_per_mtok: number;
}

const toModel = (r: Row): CatalogModel => ({
  id: r.id,
  upstreamModel: r.upstream_model,
  displayName: r.display_name,
  enabled: r.enabled === 1,
  isDefault: r.is_default === 1,
  contextWindow: r.context_window,
  maxTokens: r.max_tokens,
  inputMicrodollarsPerMTok: r.input_microdollars_per_mtok,
  outputMicrodollarsPerMTok: r.output_microdollars_per_mtok,
});

export class ModelRepository {
  constructor(private readonly db: Db) {}

  list(): CatalogModel[] {
    return (this.db.prepare('SELECT * FROM llm_models ORDER BY is_default DESC, id').all() as Row[]).map(toModel);
  }

  save(model: CatalogModel, now: number): void {
    if (model.isDefault) this.db.prepare('UPDATE llm_models SET is_default = 0 WHERE id <> ?').run(model.id);
    this.db
      .prepare(
        `INSERT INTO llm_models (id, upstream_model, display_name, enabled, is_default, context_window, max_tokens,
           input_microdollars_per_mtok, output_microdollars_per_mtok, updated_at)
         VALUES (@id, @upstreamModel, @displayName, @enabled, @isDefault, @contextWindow, @maxTokens, @input, @output, @now)
         ON CONFLICT(id) DO UPDATE SET upstream_model = excluded.upstream_model, display_name = excluded.display_name,
           enabled = excluded.enabled, is_default = excluded.is_default, context_window = excluded.context_window,
           max_tokens = excluded.max_tokens, input_microdollars_per_mtok = excluded.input_microdollars_per_mtok,
           output_microdollars_per_mtok = excluded.output_microdollars_per_mtok, updated_at = excluded.updated_at`,
      )
      .run({
        ...model,
        enabled: model.enabled ? 1 : 0,
        isDefault: model.isDefault ? 1 : 0,
        input: model.inputMicrodollarsPerMTok,
        output: model.outputMicrodollarsPerMTok,
        now,
      });
  }

  remove(id: string): boolean {
    return this.db.prepare('DELETE FROM llm_models WHERE id = ?').run(id).changes > 0;
  }
}
