/**
 * A self-contained API reference rendered from the OpenAPI document: no scripts, no fonts, nothing
 * fetched from elsewhere, so it works on an air-gapped install.
 */
interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{
    name: string;
    in: string;
    required?: boolean;
    description?: string;
    schema?: unknown;
  }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
}

interface OpenApiDoc {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
const json = (v: unknown) => `<pre>${esc(JSON.stringify(v, null, 2))}</pre>`;

function renderOperation(method: string, path: string, op: Operation): string {
  const params = (op.parameters ?? [])
    .map(
      (p) =>
        `<li><code>${esc(p.name)}</code> <em>${esc(p.in)}</em>${p.required ? ' (required)' : ''}${p.description ? ` — ${esc(p.description)}` : ''}</li>`,
    )
    .join('');
  const body = op.requestBody?.content?.['application/json']?.schema;
  const responses = Object.entries(op.responses ?? {})
    .map(([status, r]) => {
      const schema = Object.values(r.content ?? {})[0]?.schema;
      return `<li><strong>${esc(status)}</strong> ${esc(r.description ?? '')}${schema && !status.startsWith('4') ? `<details><summary>schema</summary>${json(schema)}</details>` : ''}</li>`;
    })
    .join('');
  return `<section class="op"><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h3>
<p>${esc(op.summary ?? '')}${op.security?.length ? '' : ' <em>(no API key)</em>'}</p>
${params ? `<h4>Parameters</h4><ul>${params}</ul>` : ''}
${body ? `<h4>Body</h4>${json(body)}` : ''}
<h4>Responses</h4><ul>${responses}</ul></section>`;
}

export function renderDocsPage(doc: OpenApiDoc): string {
  const byTag = new Map<string, string[]>();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = op.tags?.[0] ?? 'Other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), renderOperation(method, path, op)]);
    }
  }
  const nav = [...byTag.keys()].map((t) => `<a href="#${esc(t)}">${esc(t)}</a>`).join(' · ');
  const sections = [...byTag.entries()]
    .map(([t, ops]) => `<h2 id="${esc(t)}">${esc(t)}</h2>${ops.join('')}`)
    .join('');
  const schemas = Object.entries(doc.components?.schemas ?? {})
    .map(([name, s]) => `<details><summary><code>${esc(name)}</code></summary>${json(s)}</details>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(doc.info.title)} API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1c1c1c}
code,pre{font:13px ui-monospace,monospace}pre{background:#f5f5f5;padding:.6rem;overflow:auto;border-radius:4px}
.op{border:1px solid #ddd;border-radius:6px;padding:.2rem 1rem;margin:1rem 0}.m{display:inline-block;min-width:4.2em;color:#fff;border-radius:3px;padding:0 .3em;font-size:13px}
.get{background:#2b6cb0}.post{background:#2f855a}.put{background:#b7791f}.patch{background:#6b46c1}.delete{background:#c53030}
h4{margin:.6rem 0 .2rem}nav{position:sticky;top:0;background:#fff;padding:.4rem 0;border-bottom:1px solid #eee}
</style></head><body>
<h1>${esc(doc.info.title)} <small>${esc(doc.info.version)}</small></h1>
<p>${esc(doc.info.description ?? '')}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<nav>${nav} · <a href="#schemas">Schemas</a></nav>${sections}<h2 id="schemas">Schemas</h2>${schemas}</body></html>`;
}
