BRIDGE_ENDPOINTS='{"local": {"base_url": "http://127.0.0.1:11434/v1", "api": "chat"},
                   "groq": {"base_url": "https://api.groq.com/openai/v1", "api_key_env": "GROQ_API_KEY"}}'
BRIDGE_MODELS=local:llama3.2,groq:llama-3.3-70b-versatile,openai:gpt-4.1-mini
