"""``python -m cronofy_async.testing``: serve a fake Cronofy on loopback."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
