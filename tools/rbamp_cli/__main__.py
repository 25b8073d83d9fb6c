"""``python -m rbamp_cli``: the same as the ``rbamp`` console script."""

import sys

from rbamp_cli.cli import main

sys.exit(main())
