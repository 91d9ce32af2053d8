"""council's prompt files (package data); see README.md here. ``COUNCIL_PROMPTS_DIR`` overrides."""
