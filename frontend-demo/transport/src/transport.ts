import type { ChatRequestOptions, ChatTransport, UIMessage, UIMessageChunk } from 'ai';
import { Hub, type SteerResult, type SteeringMessage, type SteeringMode } from './hub.js';
import type { ResilientChatTransportOptions, Tier } from './options.js';
import { Session } from './session.js';

type SendOptions<UI_MESSAGE extends UIMessage> = Parameters<ChatTransport<UI_MESSAGE>['sendMessages']>[0];
type ReconnectOptions<UI_MESSAGE extends UIMessage> = Parameters<ChatTransport<UI_MESSAGE>['reconnectToStream']>[0];

/**
 * A `ChatTransport` for the aisdk-bridge that keeps an answer coming whatever the network
 * does: WebSocket first, SSE when the upgrade is refused, long-polling when streamed
 * responses arrive buffered; after a drop it reconnects with backoff and continues from the
 * last chunk it holds, so the message goes on with no duplicate and no gap.
 *
 * ```ts
 * const transport = new ResilientChatTransport({ api: '/api/chat', onTierChange: tier => … });
 * const { messages } = useChat({ transport, resume: true });
 * ```
 */
export class ResilientChatTransport<UI_MESSAGE extends UIMessage = UIMessage> implements ChatTransport<UI_MESSAGE> {
  /** A resume (`chat.resumeStream()`) replays the answer from its first chunk. */
  readonly resumeStreamIsReplay = true;
  private readonly hub: Hub;

  constructor(options: ResilientChatTransportOptions = {}) {
    this.hub = new Hub(options);
  }

  /** The tier new requests use now. */
  get tier(): Tier {
    return this.hub.tier;
  }

  async sendMessages(options: SendOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk>> {
    const session = await this.session('send', options, options.abortSignal);
    session.request.turn = {
      trigger: options.trigger,
      messageId: options.messageId,
      messages: options.messages,
    };
    const stream = await session.start();
    if (stream == null) throw new Error('the bridge answered a send with nothing to read');
    return stream;
  }

  async reconnectToStream(options: ReconnectOptions<UI_MESSAGE>): Promise<ReadableStream<UIMessageChunk> | null> {
    const session = await this.session('resume', options, options.abortSignal);
    return session.start();
  }

  /**
   * Steers the chat's running answer: the message reaches the model at the next step
   * boundary (`queue`, the default) or cuts the current model call short (`interrupt`); the
   * answer being read shows it as a `steering-message` part. Resolves `queued: false` when
   * nothing runs (send it as a normal message then).
   */
  steer(chatId: string, message: SteeringMessage, options: { mode?: SteeringMode; headers?: Record<string, string> } = {}): Promise<SteerResult> {
    return this.hub.steer(chatId, message, options.mode ?? 'queue', options.headers);
  }

  /** Closes the socket and ends every answer being read (they error). */
  close(): void {
    this.hub.close();
  }

  private async session(
    kind: 'send' | 'resume',
    options: { chatId: string; abortSignal?: AbortSignal | undefined } & ChatRequestOptions,
    abortSignal: AbortSignal | undefined,
  ): Promise<Session> {
    this.hub.maybeUpgrade();
    const request = await this.hub.prepare(options.chatId, options.headers, options.body, options.metadata);
    const session = new Session(this.hub, kind, request, abortSignal);
    this.hub.track(session);
    return session;
  }
}
