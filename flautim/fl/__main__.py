"""`python -m flautim.fl prepare|server|client|clients|inspect`: a run's processes."""

import os
import sys

from flautim.fl.commands import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
# Everything (checkpoints, events) is written and flushed by now; a torch process that exits
# normally spends ~0.5 CPU-s (seconds on a busy machine) tearing down for nothing.
os._exit(code)
