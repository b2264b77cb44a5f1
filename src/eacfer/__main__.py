"""``python -m eacfer`` (also what ``torchrun -m eacfer`` runs)."""

import sys

from eacfer.commands.cli import main

sys.exit(main())
