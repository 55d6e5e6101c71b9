"""``python -m pytest_mlxstack`` runs the ``mlxstack`` CLI."""

import sys

from pytest_mlxstack.cli import main

sys.exit(main())
