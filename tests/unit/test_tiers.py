"""The test tiers: each directory under tests/ is one, marked by tests/conftest.py; every marker
is registered; ``pytest -q`` (the README's test command) deselects only ``real_llm``."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from tests.helpers import ROOT, TIERS, tier_of


def pytest_options() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        options: dict = tomllib.load(f)["tool"]["pytest"]["ini_options"]
    return options


@pytest.mark.parametrize(
    ("path", "tier"),
    [
        ("tests/unit/test_route.py", "unit"),
        ("tests/integration/test_cli.py", "integration"),
        ("tests/bench/test_bench_smoke.py", "bench_smoke"),
        ("tests/helpers.py", None),
        ("bench/overhead.py", None),
    ],
)
def test_a_test_files_tier_is_its_directory(path, tier):
    found = tier_of(ROOT / path)
    assert (found[0] if found else None) == tier


def test_every_tier_directory_exists_and_a_unit_test_is_quick():
    for directory in TIERS:
        assert (ROOT / "tests" / directory).is_dir(), directory
    assert TIERS["unit"][1] <= 60  # the fast gate never waits 300 s for one test


def test_every_tier_marker_is_registered_and_the_readme_command_skips_only_real_llm():
    options = pytest_options()
    registered = {m.split(":", 1)[0].strip() for m in options["markers"]}
    assert {marker for marker, _ in TIERS.values()} | {"real_llm"} <= registered
    args = shlex.split(options["addopts"])
    assert args[args.index("-m") + 1] == "not real_llm"
    assert "--strict-markers" in args


def test_this_test_is_marked_unit_with_the_unit_timeout(request):
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("timeout").args == (TIERS["unit"][1],)
