"""The code checker: what can be known about an answer to a code task without an LLM.

A **code task** is a task whose text holds a Python function to write: a ``python`` code block
(or the whole text) that parses and ends with a function whose body is only its docstring (a
stub, as HumanEval's prompts are). Its ``prompt`` is that block (imports, helper functions, the
stub), its ``entry_point`` the stub's name (``code_task``).

The checks on one answer (``check``):

- **parses**: the answer's code block (``extract_code``) is valid Python (hard);
- **defines**: it defines the function the task names (hard);
- **runs** (only when the council enables execution, and only through
  ``checks.sandbox.execute``): its outputs, or the exception each call raised, on the task's own
  examples (``example_calls``: the calls written in the docstring). Crashing on every example is
  hard; a run that does not finish (timeout, memory) too;
- **matches** (when it ran): where the docstring states an example's result as a literal
  (``>>> f(1)`` then ``2`` on the next line, or ``f(1) ==> 2``, ``f(1) -> 2``, ``f(1) == 2``),
  its output must equal it (``expectations``; values compared, floats to 1e-6). Returning
  something else for a stated example is hard: the answer contradicts the task's own
  specification. An answer that matches every stated result (at least one) is **verified**.

**Agreement** (the idea of MBR-exec, Shi et al. 2022, and CodeT's dual agreement, Chen et al.
2022): two answers agree when they return the same values on the same example inputs.
``pick`` chooses among answers by their outputs: the group that is (1) not only exceptions,
(2) the largest, (3) earliest, and its earliest answer; ``agreeing`` is the largest such group.

The example calls are read from the docstring: calls such as ``f(3, [1, 2])`` (doctests,
``f(x) ==> y``, ``f(x) = y``), and ``For x = ..., y = ...`` or ``Input: x = ...`` lines turned
into calls, each with literal arguments that fit the function's parameters.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from council_agents.checks.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, Status, execute

MAX_CALLS = 12
"""Most example calls run per answer."""
EXAMPLE_TIMEOUT_S = 5.0
"""Wall-clock limit of one answer's run on the examples (the grounding step's)."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_LINE_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE
)
"""A fence on a line of its own (a task's text may mention ``` in a sentence)."""
_PYTHONIC = ("", "python", "py", "python3")


@dataclass(frozen=True)
class CodeTask:
    """The function a code task asks for."""

    prompt: str
    """The task's code: imports, helpers, and the stub (signature and docstring)."""
    entry_point: str
    """The name of the function to write."""


def _blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block of ``text`` (language lower-cased, body); an unclosed final fence
    (a cut-off answer) counts.
    """
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text)]


def _stub(tree: ast.Module) -> str | None:
    """The name of the module's last top-level function whose body is only a docstring."""
    found = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            only_doc = (
                bool(body)
                and ast.get_docstring(node) is not None
                and all(
                    (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                    or isinstance(s, ast.Pass)
                    for s in body
                )
            )
            if only_doc:
                found = node.name
    return found


def code_task(text: str) -> CodeTask | None:
    """The function ``text`` asks to write (None: not a code task)."""
    fenced = [(lang.lower(), body) for lang, body in _LINE_FENCE.findall(text)]
    candidates = [body for lang, body in fenced if lang in _PYTHONIC] or [text]
    for source in candidates:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            try:  # a stub cut after its docstring, without a body: complete it
                tree = ast.parse(source.rstrip() + "\n    pass\n")
            except SyntaxError:
                continue
        name = _stub(tree)
        if name is not None:
            return CodeTask(prompt=source, entry_point=name)
    return None


def defines(code: str, name: str) -> bool:
    """Whether ``code`` has a ``def name(`` (or ``async def``) at any indentation."""
    return (
        re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.MULTILINE)
        is not None
    )


def extract_code(answer: str, entry_point: str | None = None) -> str:
    """The code in an answer: a fenced block, preferably a python one defining the entry point.

    Order of preference: a python (or unlabelled) block that defines ``entry_point``, any block
    that defines it, the first python or unlabelled block, the first block, the raw answer (an
    answer with no fence at all is taken as code). An unclosed final fence (a cut-off answer)
    still counts as a block.
    """
    blocks = _blocks(answer)
    if not blocks:
        return answer.strip("\n")
    pythonic = [body for lang, body in blocks if lang in _PYTHONIC]
    if entry_point:
        defining = [body for body in pythonic if defines(body, entry_point)]
        defining = defining or [body for _, body in blocks if defines(body, entry_point)]
        if defining:
            return defining[0]
    return (pythonic or [blocks[0][1]])[0]


def completed(prompt: str, entry_point: str, code: str) -> str:
    """The prompt's context (imports, helper functions) and the answer's code, which defines the
    entry point (a whole function) or completes the prompt (a body).
    """
    if not defines(code, entry_point):
        return prompt + code
    # A whole function: keep what the prompt has before its stub and let the code stand for it.
    stubs = list(
        re.finditer(
            rf"^(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", prompt, re.MULTILINE
        )
    )
    return (prompt[: stubs[-1].start()] if stubs else prompt + "\n\n") + code


# --- the task's examples ------------------------------------------------------------------------


def _docstring_and_parameters(prompt: str, name: str) -> tuple[str, list[str], int]:
    """The docstring of the function to write, its parameters and how many are required."""
    try:
        tree = ast.parse(prompt + "    pass\n")
    except SyntaxError:
        try:
            tree = ast.parse(prompt)
        except SyntaxError:
            return "", [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            args = node.args
            params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            required = len(args.posonlyargs + args.args) - len(args.defaults)
            return ast.get_docstring(node) or "", params, required
    return "", [], 0


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _usable(expression: str, params: list[str], required: int) -> str | None:
    """``expression`` normalised, if it is a call with literal arguments that fit the
    parameters (``fib4(n - 1)`` in a definition is not an example).
    """
    try:
        call = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call):
        return None
    given = len(call.args) + len(call.keywords)
    values = [*call.args, *(k.value for k in call.keywords)]
    if not required <= given <= len(params) or not all(_literal(v) for v in values):
        return None
    if any(k.arg not in params for k in call.keywords):
        return None
    return ast.unparse(call)


def _written_calls(doc: str, name: str, params: list[str], required: int) -> list[str]:
    """``name(...)`` expressions in the docstring: balanced, literal arguments that fit."""
    calls = []
    for match in re.finditer(rf"\b{re.escape(name)}\(", doc):
        depth = 0
        for end in range(match.end() - 1, len(doc)):
            if doc[end] in "([{":
                depth += 1
            elif doc[end] in ")]}":
                depth -= 1
                if depth == 0:
                    call = _usable(doc[match.start() : end + 1], params, required)
                    if call is not None:
                        calls.append(call)
                    break
    return calls


_ASSIGNED = re.compile(
    r"^\s*(?:For|Input:)\s+(\w+\s*=.*?)\s*(?:,?\s*the (?:output|result)\b.*)?$", re.M
)
_BARE_INPUT = re.compile(r"^\s*Input:\s*([^=\n]+?)\s*$", re.M)


def _described_calls(doc: str, name: str, params: list[str], required: int) -> list[str]:
    """Calls built from ``For x = 1, y = 2 the output ...`` and ``Input: x = 1`` lines."""
    calls = []
    for match in _ASSIGNED.finditer(doc):
        call = _usable(f"{name}({match.group(1).rstrip(', ')})", params, required)
        if call is None and len(params) == 1:  # the docstring names the argument otherwise
            value = match.group(1).split("=", 1)[1].rstrip(", ")
            call = _usable(f"{name}({value})", params, required)
        if call is not None:
            calls.append(call)
    if len(params) == 1:
        for match in _BARE_INPUT.finditer(doc):
            call = _usable(f"{name}({match.group(1)})", params, required)
            if call is not None:
                calls.append(call)
    return calls


def example_calls(prompt: str, entry_point: str) -> list[str]:
    """The example inputs of the docstring of ``entry_point`` in ``prompt``, as calls (at most
    ``MAX_CALLS``, first seen first, no duplicates).
    """
    doc, params, required = _docstring_and_parameters(prompt, entry_point)
    calls = _written_calls(doc, entry_point, params, required) or _described_calls(
        doc, entry_point, params, required
    )
    return list(dict.fromkeys(calls))[:MAX_CALLS]


_SAME_LINE = re.compile(r"\s*(?:==>|=>|->|➞|==)\s*(.+?)\s*$")


def expectations(prompt: str, entry_point: str) -> dict[str, str]:
    """The results the docstring states for its example calls: normalised call -> the
    literal written as its result (calls whose stated result is not a literal are left out).
    """
    doc, params, required = _docstring_and_parameters(prompt, entry_point)
    found: dict[str, str] = {}
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        for match in re.finditer(rf"\b{re.escape(entry_point)}\(", line):
            depth, end = 0, -1
            for j in range(match.end() - 1, len(line)):
                if line[j] in "([{":
                    depth += 1
                elif line[j] in ")]}":
                    depth -= 1
                    if depth == 0:
                        end = j + 1
                        break
            call = _usable(line[match.start() : end], params, required) if end > 0 else None
            if call is None or call in found:
                continue
            stated = None
            same = _SAME_LINE.match(line[end:])
            if same:
                stated = same.group(1)
            elif line.lstrip().startswith(">>>"):
                following = [x.strip() for x in lines[i + 1 :] if x.strip()]
                if following and not following[0].startswith(">>>"):
                    stated = following[0]
            if stated is not None and _value(stated) is not _UNKNOWN:
                found[call] = stated
    return found


_UNKNOWN = object()


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def _equal(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-6  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def matches(output: str, stated: str) -> bool | None:
    """Whether an output (``repr``, or ``!Exception``) equals the stated result (None: the
    output cannot be read back as a value, e.g. an object's repr).
    """
    if output.startswith("!"):
        return False
    if output.startswith(("set[", "frozenset[")):
        output = output[output.index("[") :]  # shown sorted
        value = _value(output)
        stated_value = _value(stated)
        if isinstance(stated_value, set | frozenset):
            try:
                stated_value = sorted(stated_value)
            except TypeError:
                return None
        return None if value is _UNKNOWN else _equal(value, stated_value)
    value = _value(output)
    return None if value is _UNKNOWN else _equal(value, _value(stated))


# --- running the examples (only in the sandbox) -------------------------------------------------

# Evaluates each example call and prints the outputs' reprs (exceptions as "!Name") as one JSON
# line; sets are shown sorted (string hashing differs between processes).
_EXAMPLES = """

def _council_outputs(calls):
    import json

    def shown(value):
        if isinstance(value, (set, frozenset)):
            try:
                return type(value).__name__ + repr(sorted(value))
            except TypeError:
                pass
        return repr(value)[:300]

    outputs = []
    for call in calls:
        try:
            outputs.append(shown(eval(call)))
        except Exception as e:
            outputs.append("!" + type(e).__name__)
    print("\\n@@outputs " + json.dumps(outputs))


_council_outputs({calls!r})
"""


@dataclass(frozen=True)
class Examples:
    """What one answer's code returned on a task's example inputs."""

    status: Status
    """``passed`` when the code ran through every call (each may have raised)."""
    reason: str
    outputs: tuple[str, ...]
    """Per call, the result's ``repr`` or ``!ExceptionName`` (empty unless ``passed``)."""


async def run_examples(
    prompt: str,
    entry_point: str,
    code: str,
    calls: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Examples:
    """Run ``code`` on ``calls`` (Python expressions such as ``f(1, 2)``) in the sandbox
    (``checks.sandbox.execute``; ``SandboxUnavailable`` where there is none).
    """
    if not code.strip():
        return Examples("error", "the answer has no code", ())
    program = completed(prompt, entry_point, code) + _EXAMPLES.format(calls=list(calls))
    run = await execute(program, timeout, memory_mb)
    if run.status != "passed":
        return Examples(run.status, run.reason, ())
    marks = [line for line in run.stdout.splitlines() if line.startswith("@@outputs ")]
    if not marks:
        return Examples("error", "the outputs were not printed", ())
    return Examples("passed", "", tuple(json.loads(marks[-1].removeprefix("@@outputs "))))


def pick(outputs: Sequence[tuple[str, ...] | None]) -> int:
    """The index of the chosen answer, from each answer's outputs (None: it did not run)."""
    group = agreeing(outputs)
    return group[0] if group else 0


def agreeing(outputs: Sequence[tuple[str, ...] | None]) -> list[int]:
    """The answers of the winning group of equal outputs (see the module docs; [] when none
    ran).
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, output in enumerate(outputs):
        if output is not None:
            groups.setdefault(output, []).append(index)
    if not groups:
        return []

    def rank(item: tuple[tuple[str, ...], list[int]]) -> tuple[bool, int, int]:
        output, members = item
        return (only_exceptions(output), -len(members), members[0])

    return min(groups.items(), key=rank)[1]


def only_exceptions(output: Sequence[str]) -> bool:
    """Whether every example call raised (no example: False)."""
    return bool(output) and all(o.startswith("!") for o in output)


# --- the checker ----------------------------------------------------------------------------------


@dataclass
class CodeCheck:
    """What the code checker found in one answer."""

    hard: list[str] = field(default_factory=list)
    """Hard failures, one line each (the answer cannot win while one without any exists)."""
    notes: list[str] = field(default_factory=list)
    """What was checked and passed, or was not checked, one line each."""
    outputs: tuple[str, ...] | None = None
    """Its outputs on the examples (None: not run, or it did not finish)."""
    verified: bool = False
    """It ran and matched every result the docstring states (at least one)."""


async def check(task: CodeTask, answer: str, *, run: bool) -> CodeCheck:
    """Check one answer to ``task``; run it on the examples only when ``run`` (the council
    enables execution), and then only in the sandbox.
    """
    found = CodeCheck()
    code = extract_code(answer, task.entry_point)
    try:
        ast.parse(code)
    except SyntaxError as e:
        found.hard.append(f"its code does not parse: line {e.lineno}: {e.msg}")
        return found
    found.notes.append("its code parses")
    if not defines(code, task.entry_point):
        found.hard.append(f"it does not define {task.entry_point}()")
        return found
    found.notes.append(f"it defines {task.entry_point}()")
    if not run:
        found.notes.append("not run: execution is off for this council")
        return found
    calls = example_calls(task.prompt, task.entry_point)
    if not calls:
        found.notes.append("not run: the task has no examples")
        return found
    result = await run_examples(
        task.prompt, task.entry_point, code, calls, timeout=EXAMPLE_TIMEOUT_S
    )
    if result.status != "passed":
        found.hard.append(f"it did not finish on the examples ({result.status}: {result.reason})")
        return found
    found.outputs = result.outputs
    for call, output in zip(calls, result.outputs, strict=False):
        shown = f"raised {output[1:]}" if output.startswith("!") else f"returned {output}"
        found.notes.append(f"{call} {shown}")
    if only_exceptions(result.outputs):
        found.hard.append("it raised an exception on every example")
        return found
    stated = expectations(task.prompt, task.entry_point)
    compared = [
        (call, output, stated[call], matches(output, stated[call]))
        for call, output in zip(calls, result.outputs, strict=False)
        if call in stated
    ]
    wrong = [(call, output, want) for call, output, want, ok in compared if ok is False]
    if wrong:
        call, output, want = wrong[0]
        found.hard.append(
            f"it contradicts the examples the task states on {len(wrong)} of {len(compared)}: "
            f"{call} gave {output}, the task says {want}"
        )
    elif compared and all(ok for *_, ok in compared):
        found.verified = True
        found.notes.append(f"it matches all {len(compared)} results the task states")
    return found
