"""What a revision must keep of the version it revises: its artifact.

A revision is rejected (and, after its retries, the previous version stands) when it drops what
the previous version had:

- a code block, when the previous version had one;
- code that parsed (Python) and no longer parses;
- a top-level name (function, class, assignment) the previous version's code defined;
- a function or class the previous version defined on a line of its own (``def name(`` or
  ``class name`` at the start of a line), even in code that did not parse or was not fenced;
- one of the proposal's fixed sections (Approach, Steps, Acceptance criteria, Tests, Risks and
  rollback, Assumptions and open questions) that the previous version had;
- most of its text: under a quarter of a previous version of 400 characters or more.

The checks read text only; nothing here runs code.
"""

from __future__ import annotations

import ast
import re

FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)
SECTIONS = (
    "approach",
    "steps",
    "acceptance criteria",
    "tests",
    "risks",
    "assumptions",
)
"""The fixed sections of a proposal (prompts/propose.md), as a reader would find them."""
PYTHON = ("", "python", "py", "python3")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""
    return [(lang.lower(), body) for lang, body in FENCE.findall(text)]


def python_code(text: str) -> str | None:
    """The Python of a text: its Python code blocks joined (None when it has none)."""
    bodies = [body for lang, body in code_blocks(text) if lang in PYTHON]
    return "\n\n".join(bodies) if bodies else None


def parses(code: str) -> bool:
    """Whether ``code`` is valid Python."""
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def top_level_names(code: str) -> set[str]:
    """The functions, classes and names a module's top level defines."""
    names: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


_DEFINED = re.compile(r"^(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)


def defined_names(text: str) -> set[str]:
    """The functions and classes a text defines at the start of a line, parsed or not."""
    return set(_DEFINED.findall(text))


_HEADING = re.compile(r"^\s*(?:#{1,6}\s*|\d+[.)]\s*)?\**\s*([a-z][a-z ]*)", re.I)


def sections(text: str) -> set[str]:
    """The fixed sections a proposal has: lines that open with a section's name, as a heading
    (``### Steps``), a bold label (``**Steps**:``) or a numbered one (``2. **Steps**``).
    """
    found = set()
    for line in text.splitlines():
        if not line.lstrip().startswith(("#", "*")) and not line.lstrip()[:1].isdigit():
            continue
        match = _HEADING.match(line)
        if match:
            words = match.group(1).lower().strip()
            found |= {name for name in SECTIONS if words.startswith(name)}
    return found


def dropped(previous: str, revised: str) -> str | None:
    """What ``revised`` drops of ``previous`` (one line), or None when it keeps the artifact."""
    before, after = python_code(previous), python_code(revised)
    if code_blocks(previous) and not code_blocks(revised):
        return "the revision drops the previous version's code block"
    if before is not None and parses(before):
        if after is None:
            return "the revision drops the previous version's Python code"
        if not parses(after):
            return "the revision's code no longer parses"
        missing = sorted(top_level_names(before) - top_level_names(after))
        if missing:
            return f"the revision no longer defines {', '.join(missing)}"
    gone = sorted(defined_names(previous) - defined_names(revised))
    if gone:
        return f"the revision no longer defines {', '.join(gone)}"
    lost = sorted(sections(previous) - sections(revised))
    if lost:
        return f"the revision drops the section(s) {', '.join(lost)}"
    if len(previous) >= 400 and len(revised.strip()) < len(previous) // 4:
        return (
            f"the revision keeps {len(revised.strip())} of the previous version's "
            f"{len(previous)} characters"
        )
    return None
