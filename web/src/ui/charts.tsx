import { useI18n } from '../i18n/i18n';

export interface DailyPoint {
  day: string;
  tokens: number;
  costMicrodollars: number;
}

/**
 * Tokens per day as bars, cost per day as a line, in plain SVG (a chart library would weigh more
 * than the whole page). Every bar has a title for hover and a table follows for screen readers.
 */
export function DailyChart({ points, formatCost, formatTokens }: { points: DailyPoint[]; formatCost: (micro: number) => string; formatTokens: (n: number) => string }) {
  const { t } = useI18n();
  if (points.length === 0) return null;
  const width = 640;
  const height = 180;
  const pad = 24;
  const maxTokens = Math.max(1, ...points.map((p) => p.tokens));
  const maxCost = Math.max(1, ...points.map((p) => p.costMicrodollars));
  const step = (width - pad * 2) / points.length;
  const barWidth = Math.max(2, step * 0.7);
  const y = (value: number, max: number) => height - pad - (value / max) * (height - pad * 2);
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${(pad + step * i + step / 2).toFixed(1)},${y(p.costMicrodollars, maxCost).toFixed(1)}`).join(' ');
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={t('usage.chartLabel')} preserveAspectRatio="none">
        <line x1={pad} x2={width - pad} y1={height - pad} y2={height - pad} className="chart-axis" />
        {points.map((p, i) => (
          <rect key={p.day} className="chart-bar" x={pad + step * i + (step - barWidth) / 2} width={barWidth} y={y(p.tokens, maxTokens)} height={height - pad - y(p.tokens, maxTokens)}>
            <title>{`${p.day}: ${formatTokens(p.tokens)} · ${formatCost(p.costMicrodollars)}`}</title>
          </rect>
        ))}
        {maxCost > 1 && <path d={line} className="chart-line" fill="none" />}
        <text x={pad} y={14} className="chart-label">
          {t('usage.chartTokens', { max: formatTokens(maxTokens) })}
        </text>
        <text x={width - pad} y={14} className="chart-label" textAnchor="end">
          {t('usage.chartCost', { max: formatCost(maxCost) })}
        </text>
      </svg>
      <figcaption className="chart-legend">
        <span className="legend-bar" /> {t('usage.tokens')} <span className="legend-line" /> {t('usage.cost')}
      </figcaption>
    </figure>
  );
}
