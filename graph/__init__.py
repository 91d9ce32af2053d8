"""The deliberation graph: the routers and the builder."""
