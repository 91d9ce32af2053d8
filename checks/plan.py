"""The plan checker: what can be known about a plan (DEV, QA, ARCHITECT, DEVOPS, DATA work)
without an LLM.

``prompts/propose.md`` asks every proposal for six fixed sections, in order. The checks on one
plan (``check``):

- **sections** (soft): each fixed section is present: a line that, once its markdown
  punctuation and numbering are gone, starts with the section's name (``1. **Approach**:``,
  ``## Steps``, ``Acceptance criteria:``);
- **embedded code** (hard when it does not parse): each fenced block, by its language:
  ``python`` by ``ast``, ``json`` by ``json``, ``yaml`` by PyYAML when it is installed (it is not
  a dependency of the product: else "not checked"); ``sql``, ``shell`` and ``Dockerfile`` by a
  cheap well-formedness check: quotes and brackets balanced (what a cut-off or mangled snippet
  breaks first), SQL statements that open with an SQL keyword, shell blocks whose
  ``if/fi``, ``case/esac``, ``do/done`` pair up, Dockerfile lines that open with an instruction
  and a first instruction ``FROM`` (or ``ARG``); any other language: "not checked". A block
  that fails is a fact, not a taste: a plan whose code does not parse cannot win while one
  whose code does exists;
- **acceptance criteria** (soft): the section is there and its items are measurable: an item
  counts when it holds a number (a count, a duration, a percentage, a status code), a
  comparison (``<``, ``≤``, ``at least``, ``within``, ``no more than``) or a verifiable outcome
  (``returns``, ``responds``, ``exits``, ``passes``, ``fails``, ``is rejected``, ``is logged``,
  ``shows``, ``contains``, ``is present``); the section is measurable when at least half its
  items are.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

SECTIONS = (
    "Approach",
    "Steps",
    "Acceptance criteria",
    "Tests",
    "Risks and rollback",
    "Assumptions and open questions",
)
"""The fixed sections ``prompts/propose.md`` asks for, in order."""

_FENCE = re.compile(r"^```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_LEAD = re.compile(r"^[\s#>*_`\d.)\-]*")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.+)$")
_MEASURABLE = re.compile(
    r"\d|[<>≤≥=%]|\b(?:at (?:least|most)|within|no (?:more|less|fewer) than|under|below|above"
    r"|returns?|responds?|exits?|pass(?:es)?|fails?|rejected|logged|shows?|contains?|present"
    r"|equals?|matches|succeeds?)\b",
    re.I,
)

_SQL_START = re.compile(
    r"^\s*(?:select|insert|update|delete|create|alter|drop|with|grant|revoke|begin|commit"
    r"|rollback|truncate|explain|set|comment|merge|upsert|copy|vacuum|analyze|--)\b",
    re.I,
)
_DOCKER = {
    "from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy", "entrypoint",
    "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell",
}  # fmt: skip

LANGUAGES = {
    "python": "python", "py": "python", "python3": "python", "json": "json", "yaml": "yaml",
    "yml": "yaml", "sql": "sql", "sh": "shell", "bash": "shell", "shell": "shell",
    "console": "shell", "zsh": "shell", "dockerfile": "dockerfile", "docker": "dockerfile",
}  # fmt: skip
"""A fence's language -> the check that reads it."""


@dataclass
class PlanCheck:
    """What the plan checker found in one plan."""

    hard: list[str] = field(default_factory=list)
    """Hard failures (embedded code that does not parse), one line each."""
    notes: list[str] = field(default_factory=list)
    """What was checked, passed, missed, or not checked, one line each."""
    missing: list[str] = field(default_factory=list)
    """The fixed sections it lacks."""
    measurable: bool = False
    """Whether its acceptance criteria are present and measurable."""


def _plain(line: str) -> str:
    return _LEAD.sub("", line).strip().lower()


def section_lines(text: str) -> dict[str, int]:
    """Each fixed section found -> the line it starts on."""
    lines = text.splitlines()
    found: dict[str, int] = {}
    for number, line in enumerate(lines):
        plain = _plain(line)
        for name in SECTIONS:
            if name not in found and plain.startswith(name.lower()):
                found[name] = number
    return found


def section_text(text: str, name: str) -> str | None:
    """The text of section ``name`` (from its heading line to the next section; None: absent)."""
    starts = section_lines(text)
    if name not in starts:
        return None
    lines = text.splitlines()
    begin = starts[name]
    after = [n for n in starts.values() if n > begin]
    end = min(after) if after else len(lines)
    head = lines[begin]
    rest = re.split(r"[:：]\s*", head, maxsplit=1)
    inline = rest[1] if len(rest) == 2 and "**" not in rest[1][:2] else ""
    return "\n".join([inline, *lines[begin + 1 : end]]).strip()


def measurable(item: str) -> bool:
    """Whether one acceptance criterion can be verified (see the module docs)."""
    return _MEASURABLE.search(item) is not None


def criteria(text: str) -> list[str]:
    """The acceptance criteria's items (its list items, else its non-empty lines)."""
    body = section_text(text, "Acceptance criteria")
    if body is None:
        return []
    lines = [line for line in body.splitlines() if line.strip()]
    items = [m.group(1) for m in (_ITEM.match(line) for line in lines) if m]
    return items or lines


def _balanced(code: str) -> str | None:
    """Why ``code``'s quotes or brackets do not balance (None: they do)."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    quote: str | None = None
    escaped = False
    for char in code:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "'":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "'\"`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return f"an unmatched {char!r}"
    if quote:
        return f"an unclosed {quote} quote"
    if stack:
        return f"an unclosed {stack[-1]!r}"
    return None


def _without_comments(code: str, mark: str) -> str:
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(mark))


def check_block(language: str, code: str) -> tuple[bool | None, str]:
    """Whether a fenced block of ``language`` is well formed (None: not checked), and why."""
    kind = LANGUAGES.get(language.lower())
    if kind == "python":
        try:
            ast.parse(code)
        except SyntaxError as e:
            return False, f"line {e.lineno}: {e.msg}"
        return True, "parses"
    if kind == "json":
        try:
            json.loads(code)
        except ValueError as e:
            return False, str(e)
        return True, "parses"
    if kind == "yaml":
        try:
            yaml: Any = importlib.import_module("yaml")
        except ImportError:
            return None, "not checked (PyYAML is not installed)"
        try:
            list(yaml.safe_load_all(code))
        except yaml.YAMLError as e:
            return False, " ".join(str(e).split())[:200]
        return True, "parses"
    if kind == "sql":
        body = _without_comments(code, "--")
        problem = _balanced(body)
        if problem:
            return False, problem
        statements = [s for s in body.split(";") if s.strip()]
        odd = [s for s in statements if not _SQL_START.match(s)]
        if odd:
            return False, f"a statement opens with {odd[0].split()[0]!r}, not an SQL keyword"
        return True, "well formed (quotes, brackets, statement keywords)"
    if kind == "shell":
        body = _without_comments(code, "#")
        problem = _balanced(body)
        if problem:
            return False, problem
        words = re.findall(r"(?<![\w-])(if|fi|case|esac|do|done)(?![\w-])", body)
        for opening, closing in (("if", "fi"), ("case", "esac"), ("do", "done")):
            if words.count(opening) != words.count(closing):
                return (
                    False,
                    f"{words.count(opening)} {opening} against {words.count(closing)} {closing}",
                )
        return True, "well formed (quotes, brackets, if/case/do blocks)"
    if kind == "dockerfile":
        lines = _without_comments(code, "#").splitlines()
        instructions: list[str] = []
        continued = False
        for line in lines:
            if not line.strip():
                continue
            if not continued:
                word = line.split()[0].lower()
                if word not in _DOCKER:
                    return False, f"a line opens with {line.split()[0]!r}, not an instruction"
                instructions.append(word)
            continued = line.rstrip().endswith("\\")
        if instructions and instructions[0] not in ("from", "arg"):
            return False, "the first instruction is not FROM"
        return True, "well formed (instructions, FROM first)"
    return None, "not checked"


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``text``: (language, code)."""
    return [(lang, body) for lang, body in _FENCE.findall(text)]


def check(text: str) -> PlanCheck:
    """Check one plan (see the module docs)."""
    found = PlanCheck()
    present = section_lines(text)
    found.missing = [name for name in SECTIONS if name not in present]
    if found.missing:
        found.notes.append("missing sections: " + ", ".join(found.missing))
    else:
        found.notes.append("every fixed section is present")
    for number, (language, code) in enumerate(blocks(text), 1):
        ok, why = check_block(language, code)
        name = f"code block {number} ({language or 'no language'})"
        if ok is False:
            found.hard.append(f"{name} does not parse: {why}")
        else:
            found.notes.append(f"{name}: {why}")
    items = criteria(text)
    if not items:
        found.notes.append("no acceptance criteria")
    else:
        count = sum(measurable(item) for item in items)
        found.measurable = count * 2 >= len(items)
        found.notes.append(f"acceptance criteria: {count} of {len(items)} measurable")
    return found
