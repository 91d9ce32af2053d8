"""Prompt files: read at call time from the installed ``prompts`` package or a directory
(``COUNCIL_PROMPTS_DIR``), so an edit applies to the next call without a restart.

Provenance: a call renders from a ``Snapshot`` of the prompt set, read once for that call (every
``.md`` file of the tree but ``README.md``). Each file has a content hash (the first 16 hex digits
of the SHA-256 of its bytes, as ``sha256sum`` prints it) and the set one digest (the same over
the sorted ``name hash`` lines of its files), so an edit changes the digest of the next call, and
a call record names the exact files it rendered (``CallRecord.prompts``, ``prompt_set``).

A problem (a missing file, a malformed or unknown placeholder) is a ``PromptError``: bad input,
naming the file, the line, the placeholder and what is known.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from string import Template

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from council_agents.core.request import RequestError
from council_agents.core.state import Criterion

HASH_HEX = 16
"""Hex digits kept of a SHA-256: a file's hash and a set's digest."""


@dataclass(frozen=True)
class Problem:
    """One problem of one prompt file, with where it is."""

    file: str
    """The file, as its set names it (``critique.md``, ``roles/dev.md``)."""
    line: int | None
    """1-based line of the problem (None: the whole file)."""
    what: str
    """What is wrong, and what is known."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.what}"


class PromptError(RequestError):
    """A prompt file is missing, unreadable, or has a placeholder nobody fills: bad input
    (exit 2), one line naming the file, the line and the placeholder.
    """

    def __init__(self, root: str, problems: list[Problem]):
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        where = f"{first.file}:{first.line}" if first.line is not None else first.file
        super().__init__(f"prompt file {root.rstrip('/')}/{where}", f"{first.what}{more}")


def content_hash(data: bytes) -> str:
    """A file's content hash: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:HASH_HEX]


def set_digest(files: Mapping[str, str]) -> str:
    """One digest of a prompt set from its files' hashes (``name -> hash``)."""
    lines = "".join(f"{name} {files[name]}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()[:HASH_HEX]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def placeholders(text: str) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """The placeholders of a prompt text, each with the line it first appears on, and every
    malformed ``$`` (line, what follows it).
    """
    names: dict[str, int] = {}
    invalid: list[tuple[int, str]] = []
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name is not None:
            names.setdefault(name, _line(text, match.start()))
        elif match.group("invalid") is not None:
            start = match.start()
            invalid.append((_line(text, start), text[start : start + 10].split("\n")[0]))
    return names, invalid


def check_text(name: str, text: str, known: set[str] | None) -> list[Problem]:
    """The problems of one prompt file's text: malformed ``$``, placeholders not in ``known``
    (None: any placeholder is known).
    """
    names, invalid = placeholders(text)
    problems = [
        Problem(
            name,
            line,
            f"malformed placeholder at {shown!r} (use ${{name}}, and $$ for a literal $)",
        )
        for line, shown in invalid
    ]
    if known is not None:
        listed = ", ".join("${" + k + "}" for k in sorted(known)) or "none"
        problems += [
            Problem(name, line, f"unknown placeholder ${{{p}}}; known here: {listed}")
            for p, line in sorted(names.items(), key=lambda x: x[1])
            if p not in known
        ]
    return problems


@dataclass
class Snapshot:
    """A prompt set as read at one moment: every file's bytes and hash, the set's digest, and
    what was rendered from it (the call record's ``prompts``).
    """

    root: str
    """Where it was read from (for messages)."""
    files: dict[str, bytes]
    """``critique.md`` -> its bytes."""
    hashes: dict[str, str] = field(default_factory=dict)
    """``critique.md`` -> its content hash (computed when not given)."""
    digest: str = field(init=False)
    """The set's digest."""
    rendered: dict[str, str] = field(default_factory=dict)
    """The files rendered from this snapshot, ``critique.md`` -> hash."""

    def __post_init__(self) -> None:
        self.hashes = {
            name: self.hashes.get(name) or content_hash(data) for name, data in self.files.items()
        }
        self.digest = set_digest(self.hashes)

    def text(self, name: str) -> str:
        """The text of ``<name>.md`` (``PromptError`` when missing or not UTF-8)."""
        file = f"{name}.md"
        if file not in self.files:
            raise PromptError(self.root, [Problem(file, None, "is missing")])
        try:
            return self.files[file].decode("utf-8")
        except UnicodeDecodeError as e:
            raise PromptError(self.root, [Problem(file, None, f"is not UTF-8: {e}")]) from None

    def render(self, name: str, **values: object) -> str:
        """Render ``<name>.md`` with ``${placeholder}`` values (``PromptError`` naming the
        file, line and placeholder when one is malformed or not among ``values``).
        """
        text = self.text(name)
        problems = check_text(f"{name}.md", text, set(values))
        if problems:
            raise PromptError(self.root, problems)
        self.rendered[f"{name}.md"] = self.hashes[f"{name}.md"]
        return Template(text).substitute({k: str(v) for k, v in values.items()}).strip()

    def messages(
        self, system_name: str, user_name: str, *, role: str, **values: object
    ) -> list[BaseMessage]:
        """System prompt (shared by the council) then the stage prompt (shared part first)."""
        return [
            SystemMessage(self.render(system_name, role=role)),
            HumanMessage(self.render(user_name, **values)),
        ]


_RACY_S = 2.0
"""A file modified this recently is read again even when its stat is unchanged (git's "racily
clean" rule: an edit within the file system's timestamp granularity keeps mtime and size)."""


class _Stats:
    """Files read before, by path: their stat and bytes (a file whose stat is unchanged, and
    older than ``_RACY_S``, is not read again).
    """

    def __init__(self) -> None:
        self.known: dict[str, tuple[tuple[int, int, int, int], bytes, str]] = {}

    def read(self, path: str, st: os.stat_result) -> tuple[bytes, str]:
        """The file's bytes and content hash."""
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        cached = self.known.get(path)
        if cached is not None and cached[0] == key and time.time() - st.st_mtime > _RACY_S:
            return cached[1], cached[2]
        with open(path, "rb") as f:
            data = f.read()
        self.known[path] = (key, data, content_hash(data))
        return data, self.known[path][2]


def _scan(root: str, stats: _Stats, prefix: str = "") -> Iterator[tuple[str, bytes, str]]:
    """Every prompt file under a directory, by name, with its bytes and hash."""
    with os.scandir(root) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        if entry.is_dir():
            if not entry.name.startswith((".", "_")):
                yield from _scan(entry.path, stats, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".md") and entry.name != "README.md":
            yield f"{prefix}{entry.name}", *stats.read(entry.path, entry.stat())


def _walk(root: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if not entry.name.startswith((".", "_")):
                yield from _walk(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".md") and entry.name != "README.md":
            yield f"{prefix}{entry.name}", entry


class PromptFiles:
    """The prompt files of one directory (None: the installed ones)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._stats = _Stats()

    @property
    def root(self) -> Traversable:
        """Where prompt files are read from."""
        if self.directory is not None:
            return self.directory
        return resources.files("council_agents.prompts")

    @property
    def where(self) -> str:
        """The directory, as messages name it."""
        return str(self.directory) if self.directory is not None else "(installed prompts)"

    def snapshot(self) -> Snapshot:
        """Every prompt file of the set, read now (``PromptError`` when the directory is
        missing or a file cannot be read).
        """
        root = self.root
        if self.directory is not None and not self.directory.is_dir():
            raise PromptError(self.where, [Problem(".", None, "is not a directory")])
        files, hashes = {}, {}
        try:
            if isinstance(root, Path):  # a directory, or an installed package's folder
                for name, data, digest in _scan(str(root), self._stats):
                    files[name], hashes[name] = data, digest
            else:  # a package inside an archive
                files = {name: entry.read_bytes() for name, entry in _walk(root)}
        except OSError as e:
            raise PromptError(self.where, [Problem(".", None, f"unreadable: {e}")]) from None
        return Snapshot(self.where, files, hashes)

    def render(self, name: str, **values: object) -> str:
        """Render ``<name>.md`` with ``${placeholder}`` values; read fresh on every call."""
        return self.snapshot().render(name, **values)

    def messages(
        self, system_name: str, user_name: str, *, role: str, **values: object
    ) -> list[BaseMessage]:
        """System prompt (shared by the council) then the stage prompt (shared part first)."""
        return self.snapshot().messages(system_name, user_name, role=role, **values)


def rubric_text(rubric: Mapping[str, Criterion]) -> str:
    """The rubric as a Markdown list: meaning, weight and what 0, 5 and 10 mean."""
    lines = []
    for name, c in rubric.items():
        anchors = "; ".join(f"{score}: {text}" for score, text in c["anchors"].items())
        lines.append(f"- **{name}** (weight {c['weight']:g}): {c['meaning']}. Scores: {anchors}")
    return "\n".join(lines)
