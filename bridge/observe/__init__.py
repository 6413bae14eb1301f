"""What an operator looks at: Prometheus metrics (`metrics.py`), OpenTelemetry traces
(`tracing.py`) and structured logs carrying chat, generation and user (`logs.py`)."""
