/** Turn a useChat error into a short human sentence and, when known, its HTTP status. */
export function describeError(error: unknown): { message: string; status?: number; code?: string } {
  if (!(error instanceof Error)) return { message: String(error) };
  const status =
    'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : undefined;
  // The bridge answers errors before streaming with {"error": {"code", "message"}}; the SDK
  // puts that body text into `error.message`.
  try {
    const body = JSON.parse(error.message) as { error?: { code?: string; message?: string } };
    if (body?.error?.message) {
      return { message: body.error.message, status, code: body.error.code };
    }
  } catch {
    // not JSON: a plain message
  }
  return { message: error.message || 'Something went wrong.', status };
}

/**
 * The chat already has an answer running (another tab or device). Over HTTP a 409; over a
 * WebSocket the same refusal comes as an `error` frame, with the message only.
 */
export function isChatBusy(error: unknown): boolean {
  const { status, code, message } = describeError(error);
  return status === 409 || code === 'generation_active' || /already has a generation running/.test(message);
}

/**
 * A browser does not tell why a WebSocket handshake failed. The usual cause here is a bridge
 * that refuses the page's origin (403): say so.
 */
export function withSocketHint(message: string): string {
  if (!/WebSocket chat network connection (failed|closed \(code 1006)/.test(message)) return message;
  return `${message} Is the bridge running, with this page's origin in BRIDGE_CORS_ORIGINS?`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
