"""``python -m eacfer`` (also what ``torchrun -m eacfer`` runs)."""

import sys

from .cli import main

sys.exit(main())
