"""``python -m cronofy_async._cli``: the ``cronofy-async`` command without its script."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
