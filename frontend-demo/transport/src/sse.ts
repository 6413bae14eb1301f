/** One Server-Sent Event: `data` joined over its lines; `comment` for `: keep-alive`. */
export interface SseEvent {
  id: string | undefined;
  data: string | undefined;
  comment: boolean;
}

/**
 * An incremental SSE parser (lines end with CRLF, LF or CR; a blank line dispatches).
 * The transport needs the `id:` field (the chunk's offset, its resume cursor) and the
 * comments (keep-alives prove the connection is alive), which the SDK's parser drops.
 */
export class SseParser {
  private buffer = '';
  private id: string | undefined;
  private data: string[] = [];
  private comment = false;

  feed(text: string): SseEvent[] {
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let index = 0; index < this.buffer.length; index++) {
      const char = this.buffer[index];
      if (char !== '\n' && char !== '\r') continue;
      // A CR at the very end may be the first half of a CRLF split across two reads.
      if (char === '\r' && index === this.buffer.length - 1) break;
      const line = this.buffer.slice(start, index);
      if (char === '\r' && this.buffer[index + 1] === '\n') index++;
      start = index + 1;
      const event = this.line(line);
      if (event) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.data.length === 0 && !this.comment) return undefined;
      const event = {
        id: this.id,
        data: this.data.length > 0 ? this.data.join('\n') : undefined,
        comment: this.comment,
      };
      this.id = undefined;
      this.data = [];
      this.comment = false;
      return event;
    }
    if (line.startsWith(':')) {
      this.comment = true;
      return undefined;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    return undefined;
  }
}
