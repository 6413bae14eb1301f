import { getToolName, isToolUIPart, type UIMessage } from 'ai';

// Tools the bridge declares as browser-side (`client_tool`): the model asks, the page
// answers with `addToolOutput`, and the answer goes back to the bridge automatically.

type ClientTool = (input: unknown) => Promise<unknown> | unknown;

export const CLIENT_TOOLS: Record<string, ClientTool> = {
  /** The user's city, guessed from the browser's time zone (no permission prompt). */
  get_location: () => {
    const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    const city = timeZone.includes('/') ? timeZone.split('/').pop()!.replace(/_/g, ' ') : timeZone;
    return { city, timeZone, source: 'browser time zone' };
  },
};

/**
 * `sendAutomaticallyWhen` for client tools: the last step of the last assistant message
 * called at least one of CLIENT_TOOLS, and every tool call of that step has its output.
 */
export function lastStepClientToolsDone({ messages }: { messages: UIMessage[] }): boolean {
  const last = messages[messages.length - 1];
  if (!last || last.role !== 'assistant') return false;
  const stepStart = last.parts.findLastIndex((part) => part.type === 'step-start');
  const tools = last.parts.slice(stepStart + 1).filter(isToolUIPart);
  return (
    tools.some((part) => getToolName(part) in CLIENT_TOOLS) &&
    tools.every((part) => part.state === 'output-available' || part.state === 'output-error')
  );
}
