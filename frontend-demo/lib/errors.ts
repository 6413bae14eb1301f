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

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
