"""``python -m skinlib`` — see :mod:`skinlib.cli`."""

import sys

from skinlib.cli import main

sys.exit(main())
