/**
 * The load report as HTML with inline SVG charts (no scripts, no external assets: the file opens
 * anywhere). Pure functions of the report's data; unit-tested in test/unit/load-report.test.ts.
 */

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: ReadonlyArray<{ x: number; y: number }>;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Vertical lines with a label at these x values (e.g. where each phase of a run began). */
  markers?: ReadonlyArray<{ x: number; label: string }>;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step for about `target` ticks over `span`: 1, 2 or 5 times a power of ten. */
export function niceStep(span: number, target = 5): number {
  if (!(span > 0)) return 1;
  const raw = span / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 100) / 100));

/** A line chart as an `<svg>` element: one polyline per series, axes with round ticks, a legend. */
export function lineChart(series: readonly Series[], o: ChartOptions): string {
  const width = o.width ?? 900;
  const height = o.height ?? 300;
  const left = 60;
  const right = 210;
  const top = 30;
  const bottom = 45;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const all = series.flatMap((s) => s.points);
  const xMin = Math.min(0, ...all.map((p) => p.x));
  const xMax = Math.max(xMin + 1, ...all.map((p) => p.x));
  const yMax = Math.max(1e-9, ...all.map((p) => p.y));
  const yStep = niceStep(yMax);
  const yTop = Math.ceil(yMax / yStep) * yStep;
  const xStep = niceStep(xMax - xMin, 8);
  const sx = (x: number) => left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => top + plotH - (y / yTop) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${escapeHtml(o.title)}</title>`,
    `<text x="${left}" y="18" font-size="13" font-weight="bold">${escapeHtml(o.title)}</text>`,
  ];
  for (let y = 0; y <= yTop + yStep / 2; y += yStep) {
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`,
    );
  }
  for (let x = Math.ceil(xMin / xStep) * xStep; x <= xMax; x += xStep) {
    parts.push(
      `<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#333"/>`,
      `<text x="${sx(x).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${fmt(x)}</text>`,
    );
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`,
    `<text x="14" y="${top + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${top + plotH / 2})">${escapeHtml(o.yLabel)}</text>`,
  );
  for (const m of o.markers ?? []) {
    if (m.x < xMin || m.x > xMax) continue;
    parts.push(
      `<line x1="${sx(m.x).toFixed(1)}" x2="${sx(m.x).toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#999" stroke-dasharray="2 2"/>`,
      `<text x="${(sx(m.x) + 3).toFixed(1)}" y="${top + 11}" fill="#666">${escapeHtml(m.label)}</text>`,
    );
  }
  series.forEach((s, i) => {
    if (s.points.length > 0) {
      const d = s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
      parts.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="4 3"' : ''} points="${d}"><title>${escapeHtml(s.name)}</title></polyline>`,
      );
    }
    const ly = top + 10 + i * 16;
    const lx = left + plotW + 12;
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
      `<text x="${lx + 28}" y="${ly + 4}">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** An HTML table; cells are escaped, numbers written with thousands separators. */
export function htmlTable(
  head: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string {
  const cell = (v: string | number, tag: 'td' | 'th') =>
    `<${tag}${typeof v === 'number' ? ' class="n"' : ''}>${escapeHtml(typeof v === 'number' ? v.toLocaleString('en-US') : v)}</${tag}>`;
  return [
    '<table>',
    `<tr>${head.map((h) => cell(h, 'th')).join('')}</tr>`,
    ...rows.map((r) => `<tr>${r.map((v) => cell(v, 'td')).join('')}</tr>`),
    '</table>',
  ].join('\n');
}

/** A whole page: a title and sections of already-rendered HTML. */
export function page(title: string, sections: ReadonlyArray<{ heading: string; html: string }>): string {
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    '<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}',
    'table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px}',
    'td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}',
    '.pass{color:#080;font-weight:bold}.fail{color:#b00;font-weight:bold}</style>',
    '</head><body>',
    `<h1>${escapeHtml(title)}</h1>`,
    ...sections.map((s) => `<h2>${escapeHtml(s.heading)}</h2>\n${s.html}`),
    '</body></html>',
  ].join('\n');
}
