"""The graph's nodes, one module each, and nothing else."""
