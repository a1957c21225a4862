"""``python -m dagcast.cli``: the same command as the ``dagcast`` script."""

import sys

from .entry import main

sys.exit(main())
