"""``python -m tunecraft``: the same as the ``tunecraft`` command."""

from __future__ import annotations

import sys

from tunecraft.cli import main

if __name__ == "__main__":
    sys.exit(main())
