"""How a run's server and clients reach each other, and the processes that play each part.

- fast transport: `channel.py` (framed TCP), `fast.py` (DirectGrid, serve_client),
  `fast_roles.py` (the `server`, `client`, `clients` processes);
- Flower deployment: `flower_apps.py` (the apps a FAB points at), `flower_deployment.py`
  (SuperLink, SuperNodes, the FAB, following the run), `warm_clientapp.py` (ClientApp
  processes forked from a warm parent), `flower_roles.py` (`flower-server`, `flower-client`);
- `records.py`: how the apps' messages carry weights, metrics and errors;
- `processes.py`: `python -m flautim.fl <command>`, which starts any of the roles.

pyproject.toml's `fl-layers` import contract orders them, top to bottom.
"""
