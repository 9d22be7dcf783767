"""``python -m harness.cli``: the ``signbench`` command."""

import sys

from harness.cli import main

sys.exit(main())
