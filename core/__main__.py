"""Entry point of ``python -m core``."""

import os
import sys

from .cli import main

status = main()
if status == 130:
    # Cancelled: the outputs are already removed and the event written. End here, with
    # status 130, rather than through interpreter shutdown: that waits for worker threads,
    # and once, on a loaded machine, it ended a cancelled training by SIGINT (status -2),
    # as CPython does when it still counts a KeyboardInterrupt as unhandled.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)
