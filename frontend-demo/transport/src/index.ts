export { ResilientChatTransport } from './transport.js';
export type { ReconnectInfo, ResilientChatTransportOptions, Tier } from './options.js';
export type { BackoffOptions } from './backoff.js';
