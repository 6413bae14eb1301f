BRIDGE_ENDPOINTS='{"gemini": {"base_url": "https://generativelanguage.googleapis.com/v1beta/openai",
                    "api": "chat", "api_key_env": "GEMINI_API_KEY"}}'
BRIDGE_MODELS=gemini:gemini-2.5-flash
