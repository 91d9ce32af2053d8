"""Bad input gets an error that names the field and the problem."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from graph.context import MAX_ROUNDS, MAX_TASK_CHARS
from graph.state import DeliberationRequest, describe_validation_error

OK = dict(task="Split the notifications module", role="ARCHITECT", agents=3, rounds=1, rubric={"a": "b"})


@pytest.mark.parametrize("change,needle", [
    ({"task": ""}, "task: String should have at least 1 character"),
    ({"task": "   \n "}, "task: task is empty or only whitespace"),
    ({"role": "MANAGER"}, "role: unknown role 'MANAGER'; known roles: DEV, QA, ARCHITECT, DEVOPS, DATA"),
    ({"agents": 1}, "agents: Input should be greater than or equal to 2"),
    ({"rounds": -1}, "rounds: Input should be greater than or equal to 0"),
    ({"rounds": MAX_ROUNDS + 1}, f"rounds: Input should be less than or equal to {MAX_ROUNDS}"),
    ({"task": "x" * (MAX_TASK_CHARS + 1)}, f"task is {MAX_TASK_CHARS + 1} characters; the maximum is {MAX_TASK_CHARS}"),
    ({"rubric": {}}, "rubric: Dictionary should have at least 1 item"),
])
def test_bad_input_is_named(change, needle):
    with pytest.raises(ValidationError) as e:
        DeliberationRequest(**{**OK, **change})
    assert needle in describe_validation_error(e.value)


def test_role_is_normalised_and_task_trimmed():
    r = DeliberationRequest(**{**OK, "role": "devops", "task": "  t  "})
    assert r.role == "DEVOPS" and r.task == "t"
