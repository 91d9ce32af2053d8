r"""A stage's prompt as a model of its parts: fixed placeholders, and the inputs that may be
shortened to fit a context window, each by its own rule (``llm.fit`` decides how much).

- critique: the proposal under critique, oldest (first) paragraphs first (``Oldest``);
- revise: the critiques first (``Critiques``: defects, minor then major then blocker, then
  broken constraints, the last critic's first; then the summaries), then the proposal under
  revision, oldest paragraphs first;
- judge and vote: every proposal cut to the same length (``EvenCap``: the longest ones lose
  most, none is favoured for being short), each keeping its beginning;
- propose: nothing (task, constraints and rubric are never cut: ``prepare`` refuses a task
  whose shortest prompts do not fit, with the numbers).

Every cut leaves a marker in the text saying how much was omitted and why.

What agents wrote reaches another agent's prompt as data, fenced (``fence``): between
``<data-ID>`` and ``</data-ID>``, the ID drawn from the text itself (no text can hold its own
closing tag, and fence tags inside are escaped anyway), its markdown headings escaped (``\#``;
in code blocks, those of the templates' level) so that no heading or instruction in it can pass
as the template's own; the prompt files tell the readers that fenced text is data. ``Fenced``
is the same for an input that may be shortened.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.messages import BaseMessage

from council_agents.core.state import Critique
from council_agents.llm.prompt_files import PromptFiles, Snapshot

MARKER = "[… {n:,} characters omitted to fit the model's context window …]"


class Piece(Protocol):
    """A prompt input that can be shortened to a length, by its own rule."""

    def size(self) -> int:
        """Characters at full length."""
        ...

    def text(self, limit: int) -> tuple[str, str | None]:
        """The input in at most ``limit`` characters (never less than it can be), and what
        was cut (None: nothing).
        """
        ...


def marker(n: int) -> str:
    """The note left where ``n`` characters were cut."""
    return MARKER.format(n=n)


_HEADING = re.compile(r"^( {0,3})(#+)(?=\s|$)")
"""A markdown (ATX) heading: up to three spaces, ``#``s, then a space or the end."""
_SECTION = re.compile(r"^( {0,3})(##+)(?=\s|$)")
"""A heading of the templates' level or deeper (``## Task``, ``## Your assignment``)."""
_CODE = re.compile(r"^ {0,3}(```|~~~)")
"""A line that opens or closes a fenced code block."""


def escaped(text: str, headings: bool = True) -> str:
    r"""``text`` with fence tags made inert (``<\data-``, ``<\/data-``) and, with
    ``headings``, every markdown heading escaped (``\## ...``): in a code block only those of
    the templates' level or deeper, so a code comment (``# ...``) stays as written while an
    unclosed block cannot hide a section heading.
    """
    if headings:
        lines, code = [], None
        for line in text.split("\n"):
            opened = _CODE.match(line)
            if opened:
                code = (
                    opened.group(1) if code is None else (None if opened.group(1) == code else code)
                )
            else:
                line = (_HEADING if code is None else _SECTION).sub(r"\1\\\2", line)
            lines.append(line)
        text = "\n".join(lines)
    return text.replace("</data-", "<\\/data-").replace("<data-", "<\\data-")


def fence_id(text: str) -> str:
    """The fence's id: drawn from the text (a text cannot contain its own digest), so the same
    text is fenced the same way in every prompt (the prefix cache keeps working).
    """
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fence(text: str, headings: bool = True) -> str:
    """``text`` as data in a prompt: escaped (``escaped``) between ``<data-ID>`` and
    ``</data-ID>``.
    """
    tag = f"data-{fence_id(text)}"
    return f"<{tag}>\n{escaped(text, headings)}\n</{tag}>"


@dataclass
class Fenced:
    """A piece that reaches the prompt fenced as data (``fence``): shortened by its own rule
    first, to what leaves room for the fence.
    """

    piece: Piece
    headings: bool = True
    """Escape its headings (a peer's text); False for an author's own proposal, which it copies
    back and which is not a peer's."""

    def size(self) -> int:
        """Characters at full length, fence and escapes included."""
        return len(fence(self.piece.text(self.piece.size())[0], self.headings))

    def text(self, limit: int) -> tuple[str, str | None]:
        """The piece shortened to leave room for the fence, fenced."""
        room = limit - (self.size() - self.piece.size())
        inner, cut = self.piece.text(max(0, room))
        return fence(inner, self.headings), cut


@dataclass
class Oldest:
    """A text shortened from its beginning: the oldest (first) paragraphs go first."""

    name: str
    full: str

    def size(self) -> int:
        """Characters at full length."""
        return len(self.full)

    def text(self, limit: int) -> tuple[str, str | None]:
        """The newest paragraphs that fit in ``limit`` characters, after a marker."""
        if len(self.full) <= limit:
            return self.full, None
        paragraphs = self.full.split("\n\n")
        kept: list[str] = []
        room = limit - len(marker(len(self.full))) - 2
        for paragraph in reversed(paragraphs):
            if sum(len(p) + 2 for p in kept) + len(paragraph) > room:
                if not kept:  # the last paragraph alone is too long: keep its end
                    tail = paragraph[max(0, len(paragraph) - max(room, 0)) :]
                    kept.append(tail.split(" ", 1)[-1] if " " in tail else tail)
                break
            kept.insert(0, paragraph)
        body = "\n\n".join(kept)
        omitted = len(self.full) - len(body)
        note = f"{self.name}: first {omitted:,} of {len(self.full):,} characters omitted"
        return (marker(omitted) + ("\n\n" + body if body else "")), note


_SACRIFICE = {"minor": 0, "major": 1, "blocker": 2, "violation": 3, "summary": 4}
"""What goes first when critiques must be shortened: minor defects first, summaries last."""


def critique_lines(critique: Critique) -> list[tuple[str, str]]:
    """A critique as the author reads it, line by line, each with its kind (``heading``,
    ``summary``, ``violation``, or a defect's severity).
    """
    lines = [
        ("heading", f"### From {critique['critic']}"),
        ("summary", critique["summary"].strip() or "(no summary)"),
    ]
    lines += [("violation", f"- **constraint violated**: {v}") for v in critique["violations"]]
    for d in critique["defects"]:
        fix = f" Suggested fix: {d['fix']}" if d["fix"].strip() else ""
        lines.append(
            (d["severity"], f"- **{d['severity']}** ({d['where'] or 'general'}): {d['what']}{fix}")
        )
    if not critique["defects"] and not critique["violations"]:
        lines.append(("summary", "- no defects found"))
    return lines


def critique_text(critique: Critique) -> str:
    """A critique as the author (and the completed event) reads it."""
    return "\n".join(text for _, text in critique_lines(critique))


@dataclass
class Critiques:
    """Critiques as the author reads them, shortened item by item from their structure: defects
    (minor, then major, then blocker), then broken constraints, then summaries, the last
    critic's first; every critic's heading stays.
    """

    critiques: list[Critique]

    def size(self) -> int:
        """Characters at full length."""
        return len(self._join(self._lines(), {}))

    def _lines(self) -> list[list[tuple[str, str]]]:
        return [critique_lines(c) for c in self.critiques]

    def text(self, limit: int) -> tuple[str, str | None]:
        """The critiques in at most ``limit`` characters (headings always kept)."""
        lines = self._lines()
        candidates = sorted(
            (_SACRIFICE[kind], -ci, -li, ci, li, kind)
            for ci, critique in enumerate(lines)
            for li, (kind, _) in enumerate(critique)
            if kind != "heading"
        )
        dropped: dict[int, set[int]] = {}
        counts: dict[str, int] = {}
        for *_, ci, li, kind in candidates:
            if len(self._join(lines, dropped)) <= limit:
                break
            dropped.setdefault(ci, set()).add(li)
            counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            return self._join(lines, {}), None
        text = self._join(lines, dropped)
        cut = ", ".join(f"{n} {kind}" for kind, n in counts.items())
        total = sum(counts.values())
        return text, f"critiques: {total} line{'s' if total != 1 else ''} omitted ({cut})"

    @staticmethod
    def _join(lines: list[list[tuple[str, str]]], dropped: Mapping[int, set[int]]) -> str:
        parts = []
        for ci, critique in enumerate(lines):
            gone = dropped.get(ci, set())
            parts.append("\n".join(x for li, (_, x) in enumerate(critique) if li not in gone))
        text = "\n\n".join(parts) or "(none)"
        omitted = sum(len(lines[ci][li][1]) + 1 for ci, gone in dropped.items() for li in gone)
        return text + ("\n\n" + marker(omitted) if omitted else "")


@dataclass
class EvenCap:
    """Proposals shown together (judge, vote), all cut to the same length when they do not
    fit: the longest lose most, each keeps its beginning.
    """

    order: list[str]
    proposals: dict[str, str]
    join: Callable[[list[str], dict[str, str]], str]
    """How the proposals are shown (labels and headings), from their texts."""
    keep: frozenset[str] = frozenset()
    """Proposals never cut (a revising author's own: it copies it back whole)."""

    def size(self) -> int:
        """Characters at full length."""
        return len(self.join(self.order, self.proposals))

    def text(self, limit: int) -> tuple[str, str | None]:
        """The proposals, each capped at the largest common length that fits ``limit``."""
        if self.size() <= limit:
            return self.join(self.order, self.proposals), None
        low, high = 0, max((len(self.proposals[a]) for a in self.order), default=0)
        while low < high:  # the largest cap whose text fits
            middle = (low + high + 1) // 2
            if len(self.join(self.order, self._capped(middle))) <= limit:
                low = middle
            else:
                high = middle - 1
        capped = self._capped(low)
        cut = sum(len(self.proposals[a]) > low for a in self.order if a not in self.keep)
        note = f"proposals: {cut} of {len(self.order)} cut to their first {low:,} characters"
        return self.join(self.order, capped), note

    def _capped(self, cap: int) -> dict[str, str]:
        out = {}
        for agent_id in self.order:
            text = self.proposals[agent_id]
            if len(text) > cap and agent_id not in self.keep:
                head = text[:cap].rsplit(" ", 1)[0] if " " in text[:cap] else text[:cap]
                text = head + ("\n" if head else "") + marker(len(text) - len(head))
            out[agent_id] = text
        return out


@dataclass
class Prompt:
    """A stage prompt: fixed placeholders, and the inputs that may be shortened, in order of
    sacrifice (``pieces``' order).
    """

    system: str
    stage: str
    role: str
    values: dict[str, Any]
    pieces: dict[str, Piece] = field(default_factory=dict)

    def render(
        self, files: PromptFiles | Snapshot, limits: Mapping[str, int] | None = None
    ) -> tuple[list[BaseMessage], list[str]]:
        """The messages with each piece at most its limit, and what was cut (rendered from
        ``files``: a call's ``Snapshot``, or the files as they are now).
        """
        texts, cuts = {}, []
        for name, piece in self.pieces.items():
            texts[name], cut = piece.text((limits or {}).get(name, piece.size()))
            if cut:
                cuts.append(cut)
        messages = files.messages(self.system, self.stage, role=self.role, **self.values, **texts)
        return messages, cuts
