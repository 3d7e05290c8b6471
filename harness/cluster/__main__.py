"""``python -m harness.cluster up|down --dir D [--kserve]``: see :mod:`harness.cluster.cli`."""

import sys

from harness.cluster.cli import main

sys.exit(main())
