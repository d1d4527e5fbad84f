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
# /work itself is a small tmpfs; the partition folders under it are the host's disk.
# Files of 100 MB each (one file is capped by the fsize ulimit): the disk watch stops it.
_os.makedirs("/work/server/junk", exist_ok=True)
for _i in range(15):
    with open(f"/work/server/junk/fill-{_i}", "wb") as _f:
        for _ in range(100):
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

# Every planted-path trick at every point where the worker touches a folder the sandbox can
# write. Needs VICTIM_FILE and VICTIM_DIR (another tenant's stored file and folder, host
# paths) defined before it. Prints `PLANT <role> <trick> done|blocked <error>`.
PLANTED_PATHS = '''
import json as _json, os as _os, time as _time

_ROLE = _os.environ.get("FLAUTIM_ROLE", "?")


def _plant(name, attempt):
    try:
        attempt()
        print(f"PLANT {_ROLE} {name} done", flush=True)
    except Exception as exc:
        print(f"PLANT {_ROLE} {name} blocked {type(exc).__name__}", flush=True)


def _swap(folder):
    _os.rename(folder, folder + ".old")
    _os.symlink(VICTIM_DIR, folder)


def _event(**fields):
    print("@flautim-event " + _json.dumps({"v": 1, "ts": _time.time(), **fields}), flush=True)


_FIRST = not _os.environ.get("PLANTED")  # imported from dataset.py and api.py alike
_os.environ["PLANTED"] = "1"

if _FIRST and _ROLE == "prepare":
    # Where the worker once wrote its marker, links to a host file; FIFOs to block it; links
    # for its cleanup to follow; the partition folders swapped for links before the clients'
    # containers mount them; the worker's own control folder.
    for _part in sorted(_os.listdir("/work")):
        _dir = "/work/" + _part
        for _name in (".prepared", "prepared"):
            _plant(f"link-{_part}-{_name}", lambda: _os.symlink(VICTIM_FILE, f"{_dir}/{_name}"))
        _plant(f"fifo-{_part}", lambda: _os.mkfifo(f"{_dir}/.fifo"))
        _plant(f"escape-{_part}", lambda: _os.symlink(VICTIM_DIR, f"{_dir}/escape"))
        _plant(f"swap-{_part}", lambda: _swap(_dir))
    _plant("write-ctl", lambda: open("/ctl/prepared", "w").close())
    _plant("mkdir-ctl", lambda: _os.makedirs("/ctl"))

if _FIRST and _ROLE == "server":
    _plant("write-ctl", lambda: open("/ctl/prepared", "w").close())
    _os.makedirs("/out/checkpoints", exist_ok=True)
    with open("/out/checkpoints/real.pt", "wb") as _f:
        _f.write(b"weights" * 100)
    _plant("fifo-checkpoint", lambda: _os.mkfifo("/out/checkpoints/fifo.pt"))
    _plant("link-checkpoint", lambda: _os.symlink(VICTIM_FILE, "/out/checkpoints/victim.pt"))
    _plant("escape-out", lambda: _os.symlink(VICTIM_DIR, "/out/escape"))
    for _kind, _round, _file in (
        ("../../../../../../../../pwned", 1, "checkpoints/real.pt"),
        ("round\\r\\nSet-Cookie: pwned=1", 1, "checkpoints/real.pt"),
        ("round", 10**30, "checkpoints/real.pt"),
        ("final", 1, "checkpoints/fifo.pt"),
        ("final", 1, "checkpoints/victim.pt"),
        ("best", 1, "escape/dataset.py"),
    ):
        _event(type="checkpoint", round=_round, kind=_kind, files={"pytorch": _file}, metrics={})
    # Events past their cap, values Python or the database refuse.
    for _i in range(700):
        _event(type="metric", round=1, name=f"m{_i}", value=_i, source="server")
    print("@flautim-event " + "[" * 100_000 + "]" * 100_000, flush=True)
    _event(type="metric", round=1, name="huge", value=10**400, source="server")
    _event(type="metric", round=2**40, name="far", value=1.0, source="server")
    # A flood of empty files (once hidden past 200,000 entries): the run is stopped for it.
    _os.makedirs("/out/flood", exist_ok=True)
    for _i in range(3_500):
        open(f"/out/flood/{_i}", "w").close()
    _time.sleep(30)
'''
