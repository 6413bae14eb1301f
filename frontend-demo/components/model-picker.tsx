'use client';

import { useEffect, useState } from 'react';
import type { ModelList } from '@/lib/types';

const STORAGE_KEY = 'aisdk-bridge-demo:model';

/** The chosen model id: the bridge's default, or the last choice made in this browser. */
export function useModelChoice(models: ModelList): [string | null, (id: string) => void] {
  const fallback = models.default ?? models.models[0]?.id ?? null;
  const [value, setValue] = useState<string | null>(fallback);

  useEffect(() => {
    const saved = window.localStorage.getItem(STORAGE_KEY);
    if (saved && models.models.some((m) => m.id === saved)) setValue(saved);
  }, [models]);

  const choose = (id: string) => {
    setValue(id);
    window.localStorage.setItem(STORAGE_KEY, id);
  };
  return [value, choose];
}

type Props = {
  models: ModelList;
  value: string | null;
  onChange: (id: string) => void;
  disabled?: boolean;
};

export function ModelPicker({ models, value, onChange, disabled }: Props) {
  if (models.models.length === 0) {
    return (
      <span className="model-picker model-picker-empty" data-testid="model-picker">
        no models
      </span>
    );
  }
  return (
    <label className="model-picker">
      <span className="visually-hidden">Model</span>
      <select
        data-testid="model-picker"
        value={value ?? ''}
        onChange={(event) => onChange(event.target.value)}
        disabled={disabled}
      >
        {models.models.map((model) => (
          <option key={model.id} value={model.id}>
            {model.provider && model.name ? `${model.provider} · ${model.name}` : model.id}
          </option>
        ))}
      </select>
    </label>
  );
}
