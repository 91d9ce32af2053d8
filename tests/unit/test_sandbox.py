"""Code from answers runs only inside the sandbox (``checks.sandbox``): no network, nothing
written outside its private /tmp and its own directory; where there is no sandbox, nothing runs.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from council_agents.checks import code, sandbox
from council_agents.checks.sandbox import SandboxUnavailable, execute

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap is not installed")


def run(program: str) -> sandbox.Run:
    return asyncio.run(execute(program, timeout=10.0, memory_mb=256))


@pytest.fixture
def listener():
    """A TCP server on the host's loopback that records whether anyone connected."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    connected: list[bool] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            connected.append(True)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    server.close()
    thread.join(timeout=6)


def test_a_network_call_fails_inside(listener):
    port, connected = listener
    program = (
        "import socket\n"
        f"for address in [('127.0.0.1', {port}), ('1.1.1.1', 53), ('8.8.8.8', 443)]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=2).close()\n"
        "    except OSError:\n"
        "        continue\n"
        "    raise SystemExit('connected to ' + repr(address))\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "except OSError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('resolved a name')\n"
    )
    outcome = run(program)
    assert outcome.status == "passed", outcome.reason
    assert not connected  # the host's loopback is not the sandbox's


def test_a_write_outside_tmp_fails_inside_and_tmp_is_private(tmp_path):
    here = Path(__file__).resolve()
    marker = f"council-sandbox-{tmp_path.name}"
    program = (
        "import os\n"
        f"targets = ['/usr/{marker}', '/etc/{marker}', {str(here.parent / marker)!r},"
        f" {str(tmp_path / marker)!r}, os.path.expanduser('~/../{marker}')]\n"
        "for target in targets:\n"
        "    try:\n"
        "        open(target, 'w').write('x')\n"
        "    except OSError:\n"
        "        continue\n"
        "    raise SystemExit('wrote ' + target)\n"
        f"open('/tmp/{marker}', 'w').write('inside')\n"
        f"assert open('/tmp/{marker}').read() == 'inside'\n"
    )
    outcome = run(program)
    assert outcome.status == "passed", outcome.reason
    assert not (tmp_path / marker).exists()
    assert not (here.parent / marker).exists()
    assert not Path(f"/tmp/{marker}").exists()  # its /tmp was its own


def test_the_code_checker_runs_answers_only_in_the_sandbox(tmp_path, monkeypatch):
    task = code.CodeTask('def f(x):\n    """>>> f(1)\n    2\n    """\n', "f")
    target = tmp_path / "escaped"
    answer = f"```python\ndef f(x):\n    open({str(target)!r}, 'w').write('x')\n    return x\n```"
    found = asyncio.run(code.check(task, answer, run=True))
    assert found.outputs is not None and found.outputs[0].startswith("!")  # the write failed
    assert found.hard == ["it raised an exception on every example"]
    assert not target.exists()
    # where there is no sandbox, nothing runs: refused, never run on the host
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable):
        asyncio.run(code.check(task, answer, run=True))
    assert not target.exists()
