export { ResilientChatTransport } from './transport.js';
export type { ReconnectInfo, ResilientChatTransportOptions, Tier } from './options.js';
export type { SteerResult, SteeringMessage, SteeringMode } from './hub.js';
export type { BackoffOptions } from './backoff.js';
