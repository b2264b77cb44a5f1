"""``python -m eacfer`` (also what ``torchrun -m eacfer`` runs)."""

import sys

from eacfer.cli import main

sys.exit(main())
