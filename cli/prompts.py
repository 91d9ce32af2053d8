"""``council prompts check [DIR]``: every prompt file rendered with representative values, and
each problem named (file, line, placeholder, what is known), without starting any server.

The check is the one a deliberation runs before its first LLM call (``llm.stage.check_prompts``,
in ``prepare``), for every role's council (3 agents, 1 round, judges and the peer vote), so
it says the same thing, the same way; a deliberation refuses the same problems with exit 2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from council_agents.cli.commands import UsageError
from council_agents.cli.render import say
from council_agents.core.context import Context
from council_agents.core.request import admit
from council_agents.core.settings import LLMSettings, Settings
from council_agents.core.terms import ROLES
from council_agents.llm.prompt_files import Problem, PromptError, PromptFiles, Snapshot
from council_agents.llm.stage import prompt_files_used, prompt_problems


@dataclass
class Checked:
    """What checking a prompt directory found."""

    files: Snapshot
    """The prompt set as read (its files' hashes and digest)."""
    problems: list[Problem]
    """Every problem, each once, in file order."""
    unused: list[str]
    """Files council never renders (a misspelt name?)."""


def check_directory(directory: Path | None) -> Checked:
    """Every role's council's prompt files in ``directory`` (None: the installed ones)."""
    try:
        files = PromptFiles(directory).snapshot()
    except PromptError as e:
        raise UsageError(str(e)) from None
    problems: dict[tuple[str, int | None, str], Problem] = {}
    used: set[str] = set()
    for role in ROLES:
        council = admit(
            {"task": "(task)", "role": role, "rounds": 1},
            Context(agents=3, aggregator="judge+vote"),
            None,
            LLMSettings(model="(model)"),
        )["council"]
        used |= prompt_files_used(council)
        for p in prompt_problems(files, council):
            problems.setdefault((p.file, p.line, p.what), p)
    ordered = sorted(problems.values(), key=lambda p: (p.file, p.line or 0))
    return Checked(files, ordered, sorted(set(files.files) - used))


def add_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``council prompts check``."""
    p = sub.add_parser("prompts", help="check a prompt directory (no server started)")
    actions = p.add_subparsers(dest="prompts_cmd", required=True)
    c = actions.add_parser(
        "check",
        help="render every prompt file with representative values; name each problem",
    )
    c.add_argument(
        "dir",
        nargs="?",
        help="the prompt directory (default: COUNCIL_PROMPTS_DIR, else the installed prompts)",
    )
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """Check a prompt directory: 0 when every file renders, 2 naming each problem."""
    directory = (
        Path(args.dir).resolve() if args.dir else Settings.from_environment().llm.prompts_dir
    )
    checked = check_directory(directory)
    where = checked.files.root.rstrip("/")
    for name in checked.unused:
        say(f"council: note: {where}/{name} is not a prompt council renders (a misspelt name?)")
    if checked.problems:
        for problem in checked.problems:
            say(f"council: error: prompt file {where}/{problem}")
        files = len({p.file for p in checked.problems})
        say(f"council: {len(checked.problems)} problem(s) in {files} file(s) of {where}")
        return 2
    for name, digest in sorted(checked.files.hashes.items()):
        print(f"{digest}  {name}")
    print(
        f"prompt set {checked.files.digest} ({where}): {len(checked.files.hashes)} files, "
        "every placeholder known"
    )
    return 0
