"""`python -m flautim.fl prepare|server|client|clients|inspect`: a run's processes."""

from flautim.fl.transport.processes import main

raise SystemExit(main())
