"""The simulated vLLM depends on nothing of council's: it imports third-party packages and itself.

Read from the source with ``ast`` (every ``import`` and ``from ... import``, at any depth, so a
function-local import cannot hide a dependency), not from what happens to be loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import council_agents.evals
import council_agents.sim_vllm

SIM = Path(council_agents.sim_vllm.__file__).parent
EVALS = Path(council_agents.evals.__file__).parent
OWN = "council_agents.sim_vllm"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import in a file (relative ones stay inside)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "council_agents":  # from council_agents import sim_vllm, core
                found += [(node.lineno, f"council_agents.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def council_imports(path: Path) -> list[str]:
    """The imports of council's own modules outside the simulator, as ``file:line module``."""
    return [
        f"{path.name}:{line} {module}"
        for line, module in imported_modules(path)
        if (module == "council_agents" or module.startswith("council_agents."))
        and not (module == OWN or module.startswith(OWN + "."))
    ]


SOURCES = sorted(SIM.glob("**/*.py"))


def test_the_simulator_has_sources():
    assert {"__init__.py", "server.py", "engine.py"} <= {p.name for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SIM)))
def test_imports_nothing_of_council(path):
    assert council_imports(path) == []


@pytest.mark.parametrize("path", sorted(EVALS.glob("**/*.py")), ids=lambda p: p.name)
def test_the_eval_does_not_import_the_simulator(path):
    """The eval is a client of any OpenAI-compatible server; only its tests use the simulator."""
    assert [m for _, m in imported_modules(path) if m == OWN or m.startswith(OWN + ".")] == []


def test_the_check_sees_hidden_imports(tmp_path):
    source = tmp_path / "hidden.py"
    source.write_text(
        "from council_agents.sim_vllm import content\n"
        "import council_agents.sim_vllm.truth\n"
        "from council_agents import sim_vllm, core\n"
        "def f():\n"
        "    from council_agents.server.services import free_port\n"
        "    import council_agents.evals.humaneval as h\n"
    )
    assert council_imports(source) == [
        "hidden.py:3 council_agents.core",
        "hidden.py:5 council_agents.server.services",
        "hidden.py:6 council_agents.evals.humaneval",
    ]
