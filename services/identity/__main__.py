"""``python -m services.identity``: see :mod:`services.identity.cli`."""

from services.identity.cli import main

main()
