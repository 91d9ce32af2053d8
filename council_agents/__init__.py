"""council: councils of LLM agents that deliberate on software tasks."""
