"""Prompt files, read at call time from ``prompts/`` (or ``COUNCIL_PROMPTS_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path
from string import Template

from langchain_core.messages import HumanMessage, SystemMessage

_DEFAULT_DIR = Path(__file__).resolve().parent.parent / "prompts"


class PromptError(ValueError):
    """A prompt file is missing or has a placeholder nobody fills."""


def prompts_dir() -> Path:
    return Path(os.environ.get("COUNCIL_PROMPTS_DIR") or _DEFAULT_DIR)


def render(name: str, **values: object) -> str:
    """Render ``prompts/<name>.md`` with ``${placeholder}`` values; read fresh on every call."""
    path = prompts_dir() / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"prompt file {path} is missing") from None
    tpl = Template(text)
    if not tpl.is_valid():
        raise PromptError(f"prompt file {path} has a malformed placeholder (use ${{name}}, and $$ for $)")
    unknown = sorted(set(tpl.get_identifiers()) - set(values))
    if unknown:
        raise PromptError(f"prompt file {path} uses unknown placeholder(s) "
                          f"{', '.join('${' + u + '}' for u in unknown)}; known: {', '.join(sorted(values))}")
    return tpl.substitute({k: str(v) for k, v in values.items()}).strip()


def messages(system_name: str, user_name: str, *, role: str, **values: object) -> list:
    """System prompt (shared by the council) then the stage prompt (shared part first)."""
    return [SystemMessage(render(system_name, role=role)), HumanMessage(render(user_name, **values))]


def rubric_text(rubric: dict[str, str]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in rubric.items())
