"""``python -m fleet.toolchain [name ...]``: build the named tools (default: all)."""

import sys

from fleet.toolchain.build import main

sys.exit(main())
