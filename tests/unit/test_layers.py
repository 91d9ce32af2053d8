"""The house's rules, read from the code itself: each folder imports only the layers below it
(so no folder cycle), the simulator depends on nothing of council's, the contracts' closed sets
are spelled once (``core/terms.py``), the state and the nodes' updates are typed, and the map
(docs/ARCHITECTURE.md) names every module.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest
from typing_extensions import is_typeddict

from council_agents.core import state

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "core": 0,
    "checks": 1,
    "llm": 1,
    "events": 1,
    "storage": 1,
    "nodes": 2,
    "graph": 3,
    "server": 4,
    "evals": 5,
    "cli": 6,
}
"""What each home may import: only homes of a lower layer (its own, of course); homes of one
layer do not import each other. ``sim_vllm`` imports no home at all, and only ``cli`` (and the
tests) import it."""
HOMES = [*LAYERS, "sim_vllm"]


def modules() -> list[Path]:
    return sorted(p for home in HOMES for p in (ROOT / home).rglob("*.py"))


def imported_homes(path: Path) -> set[str]:
    """The homes a module imports (function-local imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "council_agents" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_lower_layers(path):
    home = path.relative_to(ROOT).parts[0]
    others = imported_homes(path) - {home}
    if home == "sim_vllm":
        assert not others, f"the simulator imports {others}"
        return
    allowed = {h for h, layer in LAYERS.items() if layer < LAYERS[home]}
    if home == "cli":
        allowed.add("sim_vllm")
    assert others <= allowed, f"{home} (layer {LAYERS[home]}) imports {others - allowed}"


def test_every_import_names_the_package():
    homes = "|".join([*HOMES, "prompts"])
    generic = re.compile(rf"^\s*(from|import) ({homes})\b", re.M)
    offenders = [str(p) for p in modules() if generic.search(p.read_text())]
    assert not offenders, f"imports without council_agents.: {offenders}"


CLOSED_SETS = {
    "aggregators": r'"judge",\s*"vote",\s*"judge\+vote"',
    "severities": r'"blocker",\s*"major",\s*"minor"',
    "stop reasons": r'"converged",\s*"budget"',
    "roles": r'"DEV",\s*"QA",\s*"ARCHITECT"',
    "decided by": r'"judges",\s*"vote",\s*"human"',
}


@pytest.mark.parametrize("name", CLOSED_SETS)
def test_each_closed_set_is_spelled_once(name):
    spelled = [
        str(p.relative_to(ROOT))
        for p in modules()
        if re.search(CLOSED_SETS[name], p.read_text()) and p.name != "terms.py"
    ]
    assert not spelled, f"{name} spelled outside core/terms.py: {spelled}"


def _loose(tp: object, seen: set[int]) -> list[str]:
    """Where ``dict[str, Any]`` or a bare ``Any`` hides in a type."""
    if tp is typing.Any:
        return ["Any"]
    if is_typeddict(tp):
        if id(tp) in seen:
            return []
        seen.add(id(tp))
        hints = typing.get_type_hints(tp, include_extras=True)
        return [f"{tp.__name__}.{k}: {w}" for k, h in hints.items() for w in _loose(h, seen)]
    return [w for arg in typing.get_args(tp) for w in _loose(arg, seen)]


def test_the_state_and_every_node_update_are_typed_all_the_way_down():
    roots = [
        state.CouncilState,
        state.OutputState,
        state.Admission,
        state.ProposeTask,
        state.CritiqueTask,
        state.ReviseTask,
        state.ShowTask,
        state.DraftUpdate,
        state.CritiqueUpdate,
        state.JudgementUpdate,
        state.BallotUpdate,
        state.DecisionUpdate,
        state.Admitted,
        state.Prepared,
        state.Published,
    ]
    loose = [w for tp in roots for w in _loose(tp, set())]
    assert not loose, loose


def test_every_node_returns_a_typed_update():
    for path in sorted((ROOT / "nodes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AsyncFunctionDef) and not node.name.startswith("_"):
                returns = ast.unparse(node.returns) if node.returns else ""
                assert "dict" not in returns and returns, f"{path.name}:{node.name} -> {returns}"


def test_the_map_names_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`([a-z_]+/[a-z_/]*[a-z_]+\.py)`", text))
    for group in re.findall(r"`([a-z_]+/)\{([a-z_, ]+)\}\.py`", text):  # `llm/{a, b}.py`
        named |= {f"{group[0]}{m.strip()}.py" for m in group[1].split(",")}
    missing = [
        str(p.relative_to(ROOT))
        for p in modules()
        if p.name != "__init__.py" and str(p.relative_to(ROOT)) not in named
    ]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
