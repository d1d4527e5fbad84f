"""User code that attacks the sandbox: snippets prepended to a bundle's dataset.py / api.py.

Each probe prints `PROBE <role> <name> blocked|OPEN <detail>`; the tests read these lines
from the experiment's stored logs.
"""

PROBES = '''
import os as _os, socket as _socket, subprocess as _subprocess

_ROLE = _os.environ.get("FLAUTIM_ROLE", "?")


def _probe(name, attempt):
    try:
        detail = attempt()
        print(f"PROBE {_ROLE} {name} OPEN {detail}", flush=True)
    except Exception as exc:
        print(f"PROBE {_ROLE} {name} blocked {type(exc).__name__}", flush=True)


def _connect(host, port):
    def attempt():
        with _socket.create_connection((host, port), timeout=3):
            return f"connected to {host}:{port}"
    return attempt


def _read(path):
    def attempt():
        with open(path, "rb") as f:
            return f"read {len(f.read(100))} bytes of {path}"
    return attempt


def _write(path):
    def attempt():
        with open(path, "w") as f:
            f.write("pwned")
        return f"wrote {path}"
    return attempt


def _listing(path):
    def attempt():
        return f"{path}: {sorted(_os.listdir(path))[:20]}"
    return attempt


for _host, _port in HOST_TARGETS:
    _probe(f"connect-{_host}:{_port}", _connect(_host, _port))
_probe("dns-internet", lambda: _socket.getaddrinfo("pypi.org", 443))
_probe("internet-ip", _connect("151.101.0.223", 443))
_probe("write-root", _write("/evil"))
_probe("write-bundle", _write("/bundle/evil.py"))
_probe("write-data", _write("/bundle/data/evil"))
_probe("read-other-experiment", _read(OTHER_EXPERIMENT_FILE))
if _ROLE.startswith("client-"):  # only the server side has an output folder to write
    _probe("write-out", _write("/out/evil"))
_probe("list-work", _listing("/work") if _ROLE != "prepare" else (lambda: (_ for _ in ()).throw(PermissionError("n/a"))))
_probe("read-docker-socket", _read("/var/run/docker.sock"))
_probe("read-shadow", _read("/etc/shadow"))
print(f"PROBE {_ROLE} uid {_os.getuid()}", flush=True)
print(f"PROBE {_ROLE} data-listing {sorted(_os.listdir('/data')) if _os.path.isdir('/data') else '-'}", flush=True)
# A process left behind: it must not survive the run.
_subprocess.Popen(["sleep", "100000"], start_new_session=True)
'''

FORK_BOMB = '''
import os as _os
_children = 0
while True:
    try:
        _os.fork()
        _children += 1
    except OSError as exc:
        print(f"fork refused after {_children}: {exc}", flush=True)
        raise
'''

MEMORY_BOMB_API_SUFFIX = '''

_original_train = DigitsExperiment.training_loop


def _greedy(self, data_loader):
    hoard = []
    while True:
        hoard.append(bytearray(50 * 2**20))  # touch 50 MB at a time
        for i in range(0, len(hoard[-1]), 4096):
            hoard[-1][i] = 1


DigitsExperiment.training_loop = _greedy
'''

DISK_FILL = '''
import os as _os
with open("/tmp/fill", "wb") as _f:
    try:
        for _ in range(10_000):
            _f.write(b"0" * 2**20)
    except OSError as exc:
        print(f"tmpfs full: {exc}", flush=True)
_os.makedirs("/work/junk", exist_ok=True)
with open("/work/junk/fill", "wb") as _f:
    for _ in range(1_500):
        _f.write(b"0" * 2**20)
        _f.flush()
'''

PRINT_FLOOD = '''
import sys as _sys
_line = "spam " * 200 + "\\n"
for _ in range(40_000):  # ~40 MB
    _sys.stdout.write(_line)
_sys.stdout.flush()
'''

SYMLINK_PLANT_API_PREFIX = '''
import json as _json, os as _os, time as _time
if _os.environ.get("FLAUTIM_ROLE") == "server":
    try:
        _os.symlink("/etc/passwd", "/out/evil.pt")
        _os.makedirs("/out/sub", exist_ok=True)
        _os.symlink("/etc", "/out/sub/link")
    except OSError as exc:
        print(f"plant failed: {exc}", flush=True)
    for _rel in ("evil.pt", "sub/link/passwd", "../../../../etc/passwd"):
        print("@flautim-event " + _json.dumps({"v": 1, "type": "checkpoint", "ts": _time.time(),
              "round": 1, "kind": "round", "files": {"pytorch": _rel}, "metrics": {}}), flush=True)
    print("@flautim-event {not json", flush=True)
    print('@flautim-event {"v": 99, "type": "metric"}', flush=True)
'''
