"""`python -m clocksync` is the `clocksync` command."""

import sys

from clocksync.app.cli import main

sys.exit(main())
