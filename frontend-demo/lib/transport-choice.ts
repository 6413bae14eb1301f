/**
 * How the page talks to the bridge:
 * - `sse`: the stock `DefaultChatTransport` (POST + SSE, resume with GET …/stream);
 * - `ws`: the stock `WebSocketChatTransport` (one socket, the SDK's frames);
 * - `auto`: `ResilientChatTransport` (WebSocket, then SSE, then long-polling).
 */
export type TransportChoice = 'sse' | 'ws' | 'auto';

export const TRANSPORT_CHOICES: readonly TransportChoice[] = ['sse', 'ws', 'auto'];
export const DEFAULT_TRANSPORT: TransportChoice = 'sse';

/** The URL query parameter and the localStorage key that keep the choice. */
export const TRANSPORT_PARAM = 'transport';
export const TRANSPORT_STORAGE_KEY = 'aisdk-bridge-demo:transport';

export function parseTransportChoice(value: unknown): TransportChoice | null {
  return TRANSPORT_CHOICES.includes(value as TransportChoice) ? (value as TransportChoice) : null;
}
