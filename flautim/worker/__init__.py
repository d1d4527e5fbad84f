"""The trusted side of execution: the RQ queue, the worker, the experiment job and the
ingestion of a run's output into the database and Redis. Web code imports only
`flautim.worker.queue` (no torch, no Docker)."""
