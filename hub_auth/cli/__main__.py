"""``python -m hub_auth.cli``: the ``hub-auth`` command."""

from hub_auth.cli import main

main()
