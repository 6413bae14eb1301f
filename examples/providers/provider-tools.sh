BRIDGE_MODEL_OPTIONS='{
  "openai:gpt-5-mini": {"provider_tools": [
    {"type": "web_search", "filters": {"allowed_domains": ["example.com"]},
     "user_location": {"type": "approximate", "country": "FR", "city": "Paris"}},
    {"type": "file_search", "vector_store_ids": ["vs_..."], "max_num_results": 5},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "image_generation", "quality": "low"},
    {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp",
     "allowed_tools": ["ask_question"], "require_approval": "never"}]},
  "anthropic:claude-sonnet-4-5": {"provider_tools": [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5,
     "allowed_domains": ["example.com"],
     "user_location": {"type": "approximate", "country": "FR", "city": "Paris"}},
    {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3},
    {"type": "code_execution_20250825", "name": "code_execution"}]}}'
BRIDGE_MODELS=openai:gpt-5-mini,anthropic:claude-sonnet-4-5
