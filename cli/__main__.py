"""``python -m council_agents.cli``: the ``council`` command."""

import sys

from council_agents.cli.main import main

sys.exit(main())
