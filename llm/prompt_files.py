"""Prompt files: read at call time from the installed ``prompts`` package or a directory
(``COUNCIL_PROMPTS_DIR``), so an edit applies to the next call without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from council_agents.core.state import Criterion


class PromptError(ValueError):
    """A prompt file is missing or has a placeholder nobody fills."""


class PromptFiles:
    """The prompt files of one directory (None: the installed ones)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    @property
    def root(self) -> Traversable:
        """Where prompt files are read from."""
        if self.directory is not None:
            return self.directory
        return resources.files("council_agents.prompts")

    def render(self, name: str, **values: object) -> str:
        """Render ``<name>.md`` with ``${placeholder}`` values; read fresh on every call."""
        path = self.root.joinpath(*f"{name}.md".split("/"))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PromptError(f"prompt file {path} is missing") from None
        template = Template(text)
        if not template.is_valid():
            raise PromptError(
                f"prompt file {path} has a malformed placeholder (use ${{name}}, and $$ for $)"
            )
        unknown = sorted(set(template.get_identifiers()) - set(values))
        if unknown:
            named = ", ".join("${" + u + "}" for u in unknown)
            raise PromptError(
                f"prompt file {path} uses unknown placeholder(s) {named}; "
                f"known: {', '.join(sorted(values))}"
            )
        return template.substitute({k: str(v) for k, v in values.items()}).strip()

    def messages(
        self, system_name: str, user_name: str, *, role: str, **values: object
    ) -> list[BaseMessage]:
        """System prompt (shared by the council) then the stage prompt (shared part first)."""
        return [
            SystemMessage(self.render(system_name, role=role)),
            HumanMessage(self.render(user_name, **values)),
        ]


def rubric_text(rubric: Mapping[str, Criterion]) -> str:
    """The rubric as a Markdown list: meaning, weight and what 0, 5 and 10 mean."""
    lines = []
    for name, c in rubric.items():
        anchors = "; ".join(f"{score}: {text}" for score, text in c["anchors"].items())
        lines.append(f"- **{name}** (weight {c['weight']:g}): {c['meaning']}. Scores: {anchors}")
    return "\n".join(lines)
