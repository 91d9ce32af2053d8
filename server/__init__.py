"""Council's processes: HTTP app, NATS worker, CLI, embedded services, simulated vLLM."""
