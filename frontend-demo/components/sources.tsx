import type { SourceDocumentUIPart, SourceUrlUIPart } from 'ai';

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export function Sources({ sources }: { sources: (SourceUrlUIPart | SourceDocumentUIPart)[] }) {
  return (
    <div className="sources" data-testid="sources">
      <div className="sources-label">Sources</div>
      <ol className="sources-list">
        {sources.map((source, index) =>
          source.type === 'source-url' ? (
            <li key={source.sourceId}>
              <a href={source.url} target="_blank" rel="noopener noreferrer" data-testid="source">
                <span className="source-index">{index + 1}</span>
                <span className="source-title">{source.title ?? hostOf(source.url)}</span>
                <span className="source-host">{hostOf(source.url)}</span>
              </a>
            </li>
          ) : (
            <li key={source.sourceId}>
              <span className="source-doc" data-testid="source">
                <span className="source-index">{index + 1}</span>
                <span className="source-title">{source.title}</span>
                <span className="source-host">{source.filename ?? source.mediaType}</span>
              </span>
            </li>
          ),
        )}
      </ol>
    </div>
  );
}
