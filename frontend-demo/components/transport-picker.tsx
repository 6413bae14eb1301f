'use client';

import type { TransportChoice } from '@/lib/transport-choice';

const OPTIONS: { value: TransportChoice; label: string; hint: string }[] = [
  { value: 'sse', label: 'SSE · stock', hint: 'DefaultChatTransport: a POST streamed as SSE' },
  { value: 'ws', label: 'WebSocket · stock', hint: 'WebSocketChatTransport: one socket, the SDK frames' },
  {
    value: 'auto',
    label: 'Auto · resilient',
    hint: 'ResilientChatTransport: WebSocket, then SSE, then long-polling',
  },
];

type Props = {
  value: TransportChoice;
  onChange: (choice: TransportChoice) => void;
  disabled?: boolean;
};

/** Which transport the chat uses; kept in the URL (?transport=) and in localStorage. */
export function TransportPicker({ value, onChange, disabled }: Props) {
  const hint = OPTIONS.find((option) => option.value === value)?.hint;
  return (
    <label className="picker">
      <span className="visually-hidden">Transport</span>
      <select
        data-testid="transport-picker"
        value={value}
        onChange={(event) => onChange(event.target.value as TransportChoice)}
        disabled={disabled}
        title={hint}
      >
        {OPTIONS.map((option) => (
          <option key={option.value} value={option.value} title={option.hint}>
            {option.label}
          </option>
        ))}
      </select>
    </label>
  );
}
