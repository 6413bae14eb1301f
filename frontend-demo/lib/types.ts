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
