"""The quotes checker: a claim that cites the proposal must cite text that is there.

A critic's defect says ``where`` it is, and ``prompts/critique.md`` asks that place to carry a
short exact quote of the proposal in double quotes (``Steps: "deploy before the migration"``);
a judge's strengths and defects are "tied to the text" (``prompts/judge.md``) the same way. The
**quoted evidence** of a claim is every span between double quotes (straight or curly) or
backticks in it. Each span is looked for in the proposal the claim is about, both normalised
(``normalise``): lower case, markdown punctuation removed (``* _ # > ` ~ |`` and the backslash of
an escaped heading), curly quotes and dashes made plain, whitespace collapsed, and the span's
own leading and trailing punctuation and ellipses dropped. A span shorter than
``MIN_QUOTE_CHARS`` once normalised is not checked (a word or two occurs anywhere, or nowhere
by a typo). A claim with a checked span that does not occur is **dropped** (it cites text that
is not there) and counted; a claim without quoted text is kept as it is.
"""

from __future__ import annotations

import re

MIN_QUOTE_CHARS = 12
"""Quotes shorter than this (normalised) are not checked."""

_SPANS = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|`([^`\n]+)`')
_MARKDOWN = re.compile(r"[*_#>`~|\\]")
_PLAIN = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."})
_EDGES = " \t.,;:!?\"'()[]-"


def normalise(text: str) -> str:
    """``text`` as quotes are compared: see the module docs."""
    plain = _MARKDOWN.sub(" ", text.translate(_PLAIN).lower())
    return " ".join(plain.split())


def spans(claim: str) -> list[str]:
    """The quoted spans of ``claim``."""
    return [next(g for g in m.groups() if g is not None) for m in _SPANS.finditer(claim)]


def _core(span: str) -> str:
    core = normalise(span).strip(_EDGES)
    while core.endswith("...") or core.startswith("..."):
        core = core.removesuffix("...").removeprefix("...").strip(_EDGES)
    return core


def missing(claim: str, proposal: str) -> list[str]:
    """The checked quotes of ``claim`` that do not occur in ``proposal`` ([] when every quote
    long enough to check is there, or there is none).
    """
    text = normalise(proposal)
    found = []
    for span in spans(claim):
        core = _core(span)
        if len(core) < MIN_QUOTE_CHARS:
            continue
        pieces = [p.strip(_EDGES) for p in core.split("...")]  # an elided quote: each part
        if not all(p in text for p in pieces if len(p) >= MIN_QUOTE_CHARS // 2):
            found.append(span)
    return found


def grounded(claims: list[str], proposal: str) -> tuple[list[str], int]:
    """``claims`` without those citing text ``proposal`` does not have, and how many went."""
    kept = [c for c in claims if not missing(c, proposal)]
    return kept, len(claims) - len(kept)
