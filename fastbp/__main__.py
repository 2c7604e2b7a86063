"""``python -m fastbp``: the demo (XOR, then digits)."""

import sys

from .demo import main

sys.exit(main())
