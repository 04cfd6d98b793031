"""``python -m stirfried.server`` is ``stirfried-server``."""

import sys

from stirfried.server.cli import main

sys.exit(main())
