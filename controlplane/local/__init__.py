"""Single-machine parts: a throwaway real Prometheus and synthetic vLLM metric history."""
