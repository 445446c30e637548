"""``python -m streams.cli``: the ``salewatch`` command."""

import sys

from streams.cli import main

sys.exit(main())
