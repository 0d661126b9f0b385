"""`python -m clocksync` is the `clocksync` command."""

import sys

from clocksync.cli import main

sys.exit(main())
