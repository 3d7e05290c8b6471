"""``python -m harness up|down --dir D [--kserve]``: see :mod:`harness.cli`."""

import sys

from harness.cli import main

sys.exit(main())
