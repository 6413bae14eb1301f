'use client';

import {
  getToolName,
  isToolUIPart,
  type DynamicToolUIPart,
  type SourceDocumentUIPart,
  type SourceUrlUIPart,
  type ToolUIPart,
} from 'ai';
import './provider-tool-card.css';

type Part = ToolUIPart | DynamicToolUIPart;
type Link = { url: string; title?: string };

/**
 * A tool the provider ran itself (web search, file search, code interpreter, MCP, ...).
 * A call waiting for the user's approval (an MCP approval request) is not one of these:
 * it keeps the ordinary tool part with its buttons.
 */
export function isProviderToolPart(part: { type: string }): part is Part {
  return (
    isToolUIPart(part as Part) &&
    (part as Part).providerExecuted === true &&
    (part as Part).state !== 'approval-requested' &&
    (part as Part).state !== 'approval-responded'
  );
}

const LABELS: Record<string, string> = {
  web_search: 'Web search',
  web_search_preview: 'Web search',
  web_fetch: 'Web fetch',
  file_search: 'File search',
  code_interpreter: 'Code interpreter',
  code_execution: 'Code execution',
  image_generation: 'Image generation',
  mcp: 'MCP',
};

function record(value: unknown): Record<string, unknown> {
  return value && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function hostOf(url: string): string {
  try {
    return new URL(url).host.replace(/^www\./, '');
  } catch {
    return url;
  }
}

/** An untitled page's name: its host and path (the host alone says too little). */
function pageOf(url: string): string {
  try {
    const { pathname } = new URL(url);
    return `${hostOf(url)}${pathname === '/' ? '' : pathname.replace(/\/+$/, '')}`;
  } catch {
    return url;
  }
}

/** The search's query: in its input (Anthropic) or in the action it reports (OpenAI). */
function queryOf(part: Part): string | undefined {
  const input = record(part.input);
  const action = record(record(part.state === 'output-available' ? part.output : undefined).action);
  const queries = Array.isArray(action.queries) ? action.queries.join(' · ') : undefined;
  const query = input.query ?? action.query ?? queries;
  return typeof query === 'string' && query ? query : undefined;
}

/**
 * The pages a search read: the URLs its output lists (OpenAI `sources`, Anthropic's array of
 * results), titled by the message's `source-url` parts; the message's sources when the
 * output lists none.
 */
function linksOf(part: Part, sources: SourceUrlUIPart[]): Link[] {
  const output = part.state === 'output-available' ? part.output : undefined;
  const listed = Array.isArray(output) ? output : record(output).sources;
  const titles = new Map<string, string>();
  for (const source of sources) {
    if (source.title && !titles.has(source.url)) titles.set(source.url, source.title);
  }
  const found: Link[] = Array.isArray(listed)
    ? listed.flatMap((item) => {
        const url = record(item).url;
        const title = record(item).title;
        return typeof url === 'string' ? [{ url, title: typeof title === 'string' ? title : undefined }] : [];
      })
    : [];
  const links = found.length > 0 ? found : sources.map(({ url, title }) => ({ url, title }));
  const seen = new Set<string>();
  return links
    .filter(({ url }) => !seen.has(url) && Boolean(seen.add(url)))
    .map(({ url, title }) => ({ url, title: title ?? titles.get(url) }));
}

function StateBadge({ part }: { part: Part }) {
  const [tone, label] =
    part.state === 'output-available'
      ? ['good', 'Done']
      : part.state === 'output-error' || part.state === 'output-denied'
        ? ['bad', 'Failed']
        : ['busy', 'Running'];
  return <span className={`tool-state tool-state-${tone}`}>{label}</span>;
}

function WebSearchCard({ part, sources }: { part: Part; sources: SourceUrlUIPart[] }) {
  const query = queryOf(part);
  const links = linksOf(part, sources);
  const running = part.state === 'input-streaming' || part.state === 'input-available';
  return (
    <div
      className="ptool ptool-search"
      data-testid="search-card"
      data-tool-call-id={part.toolCallId}
      data-state={part.state}
    >
      <div className="ptool-head">
        <span className="ptool-icon" aria-hidden="true">
          ⌕
        </span>
        <span className="ptool-title">{running ? 'Searching the web' : 'Searched the web'}</span>
        {query ? (
          <span className="ptool-query" data-testid="search-query">
            {query}
          </span>
        ) : null}
        <StateBadge part={part} />
      </div>
      {links.length > 0 ? (
        <ul className="ptool-links" data-testid="search-sources">
          {links.map((link) => (
            <li key={link.url}>
              <a href={link.url} target="_blank" rel="noopener noreferrer" data-testid="search-source">
                <span className="ptool-link-title">{link.title ?? pageOf(link.url)}</span>
                <span className="ptool-link-host">{hostOf(link.url)}</span>
              </a>
            </li>
          ))}
        </ul>
      ) : part.state === 'output-error' ? (
        <div className="ptool-body ptool-error">{part.errorText}</div>
      ) : null}
    </div>
  );
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** Any other provider tool: its name, state and, once opened, its input and output. */
function GenericCard({ part }: { part: Part }) {
  const name = getToolName(part);
  return (
    <details
      className="ptool"
      data-testid="provider-tool"
      data-tool-name={name}
      data-tool-call-id={part.toolCallId}
      data-state={part.state}
    >
      <summary className="ptool-head">
        <span className="ptool-chevron" aria-hidden="true">
          ›
        </span>
        <span className="ptool-title">{part.title ?? LABELS[name] ?? name}</span>
        <span className="ptool-by">run by the provider</span>
        <StateBadge part={part} />
      </summary>
      {part.input !== undefined ? (
        <div className="ptool-body">
          <div className="tool-label">Input</div>
          <pre className="tool-json" data-testid="provider-tool-input">
            {text(part.input)}
          </pre>
        </div>
      ) : null}
      {part.state === 'output-available' ? (
        <div className="ptool-body">
          <div className="tool-label">Output</div>
          <pre className="tool-json" data-testid="provider-tool-output">
            {text(part.output)}
          </pre>
        </div>
      ) : null}
      {part.state === 'output-error' ? (
        <div className="ptool-body">
          <div className="tool-label">Error</div>
          <pre className="tool-json tool-error">{part.errorText}</pre>
        </div>
      ) : null}
    </details>
  );
}

type Props = { part: Part; sources: (SourceUrlUIPart | SourceDocumentUIPart)[] };

export function ProviderToolCard({ part, sources }: Props) {
  const name = getToolName(part);
  const urls = sources.filter((source): source is SourceUrlUIPart => source.type === 'source-url');
  return name === 'web_search' || name === 'web_search_preview' ? (
    <WebSearchCard part={part} sources={urls} />
  ) : (
    <GenericCard part={part} />
  );
}
