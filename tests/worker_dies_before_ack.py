"""``council worker`` that kills itself (SIGKILL) after publishing, before acking: a crash
between the completed event's publish and the message's ack, for the exactly-once test.
"""

from __future__ import annotations

import os
import signal
import sys

from nats.aio.msg import Msg

from council_agents.cli.main import main
from council_agents.server.worker import Worker


async def _die(self: Worker, msg: Msg) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    Worker.ack = _die  # type: ignore[method-assign]
    sys.exit(main())
