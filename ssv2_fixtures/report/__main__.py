from __future__ import annotations

import sys

from .core import main

sys.exit(main())
