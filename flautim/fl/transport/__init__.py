"""How a run's server and clients reach each other: the fast direct channel and a Flower
deployment (see docs/runtime-internals.md)."""
