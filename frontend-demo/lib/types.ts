import type { UIMessage } from 'ai';

/** Token usage as the bridge reports it in assistant message metadata. */
export type Usage = {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  reasoningTokens?: number;
  cachedInputTokens?: number;
};

/** `message.metadata` of assistant messages (may be absent). */
export type ChatMetadata = {
  usage?: Usage;
  model?: string;
};

export type ChatMessage = UIMessage<ChatMetadata>;

export type ChatSummary = {
  id: string;
  title?: string | null;
  updatedAt?: string | number | null;
};

export type ModelInfo = {
  id: string;
  provider?: string;
  name?: string;
};

export type ModelList = {
  models: ModelInfo[];
  default: string | null;
};

/** `GET /api/chat/{id}/messages`. */
export type StoredChat = {
  chatId: string;
  messages: ChatMessage[];
  activeGenerationId: string | null;
};

/** A steering message's outcome (`data-steering-outcome`, the AI SDK's vocabulary). */
export type SteeringOutcome =
  | { type: 'delivered'; id: string; stepNumber: number }
  | { type: 'not-delivered'; id: string; reason: string };

export type SteeringOutcomes = Record<string, SteeringOutcome>;

/** `data-recovering`: the answer's producer was taken over (`recovering`), goes on, or gave up. */
export type Recovery = { phase: 'recovering' | 'resumed' | 'failed'; attempt?: number; reason?: string };
