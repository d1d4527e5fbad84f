"""Keeping sandbox networks away from the host's own services.

An `internal` Docker network has no route to the outside world, but the host still owns the
bridge's gateway address, so a service listening on 0.0.0.0 (a web server, a database) is
reachable from the containers. Every sandbox bridge is therefore named with one prefix and a
single iptables rule drops everything the host would receive from such a bridge. Container to
container traffic on the same bridge is forwarded, not received by the host, so the
federation still works.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import subprocess

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "flb"
_ok: bool | None = None


def bridge_name(experiment_id: int, attempt: int) -> str:
    """A Linux interface name (15 characters at most) unique to this run on this host."""
    digest = hashlib.sha1(f"{experiment_id}:{attempt}:{socket.gethostname()}".encode()).hexdigest()
    return BRIDGE_PREFIX + digest[:12]


def ensure_host_firewall() -> str | None:
    """Install the drop rule once (idempotent); returns a warning when it cannot."""
    global _ok
    if _ok:
        return None
    problems = []
    for tool in ("iptables", "ip6tables"):
        binary = shutil.which(tool)
        if binary is None:
            if tool == "iptables":
                problems.append("iptables is not installed")
            continue
        rule = ["INPUT", "-i", BRIDGE_PREFIX + "+", "-j", "DROP"]
        try:
            check = subprocess.run([binary, "-C", *rule], capture_output=True, timeout=20)
            if check.returncode != 0:
                added = subprocess.run([binary, "-I", *rule[:1], "1", *rule[1:]], capture_output=True,
                                       text=True, timeout=20)
                if added.returncode != 0 and tool == "iptables":
                    problems.append(added.stderr.strip() or f"{tool} refused the rule")
        except (OSError, subprocess.SubprocessError) as exc:
            if tool == "iptables":
                problems.append(str(exc))
    if problems:
        _ok = False
        message = (
            "the host's services may be reachable from sandbox networks: could not add the "
            f"iptables rule 'INPUT -i {BRIDGE_PREFIX}+ -j DROP' ({'; '.join(problems)}); run "
            "the worker as root or add the rule yourself"
        )
        log.warning(message)
        return message
    _ok = True
    return None
