"""``python -m hub_auth.testing``: run FakeHub from the shell (``--help`` for the options)."""

import sys

from hub_auth.testing._cli import main

sys.exit(main())
