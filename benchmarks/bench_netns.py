"""One experiment across "hosts": the fast transport's server and client processes in
separate network namespaces, side by side with the same run on loopback.

    .venv/bin/python benchmarks/bench_netns.py [--clients 10] [--rounds 5] [--repeat 3] [--train-digits 800]
    .venv/bin/python benchmarks/bench_netns.py --synthetic --rounds 30 --repeat 3
    .venv/bin/python benchmarks/bench_netns.py --tls-only

Needs root (it creates network namespaces, veth pairs, a bridge and tc qdiscs) and `ip`/`tc`
(Debian: iproute2). Topology, all of it inside namespaces named `fl15-*` (the machine's own
network is never touched; every address is on 10.215.15.0/24, which exists only there):

    fl15-server (10.215.15.1: `python -m flautim.fl server`)
    fl15-hosta  (10.215.15.2: `clients --ids 0-4`)      each with eth0, a veth whose peer
    fl15-hostb  (10.215.15.3: `clients --ids 5-9`)      sits on bridge br0 in fl15-sw
    fl15-loop   (the loopback baseline: every process on its 127.0.0.1, alone on that `lo`)

Profiles: `loopback`; `veth` (namespaces, no shaping); `relay` (namespaces, through the
relay below with no delay: what the relay itself costs); `lan` (1 Gbit/s, 1 ms RTT); `wan`
(100 Mbit/s, 20 ms RTT); `*` in the tables marks the runs through the relay. Bandwidth is a
tbf qdisc on both ends of every link. Latency: this kernel has no netem (`tc qdisc ... netem`
answers "Specified qdisc kind is unknown"), so the clients reach the server through a relay
in the server's namespace that holds every chunk for RTT/2 in each direction (`--relay`,
below); it delays data, not TCP's handshake.

Per profile it prints the round time (mean of rounds 2..R, from the server's events) and the
bytes on the wire: counters of the server namespace's interface (rx + tx of eth0; tx of lo
for loopback, where each packet is counted once each way), read from /proc/PID/net/dev of a
process parked in that namespace, for the whole run and per round (the run's bytes over its
rounds). Then what TLS on the
channel would cost in CPU (`--tls-only`: just that). `--synthetic` times the transport
alone: the same messages with no training (`echo_server`). Nothing here asserts a time.
Everything it creates is removed in a `finally` (also on SIGTERM or Ctrl-C), and leftovers
of an earlier interrupted run are removed first.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench_runtime import make_bundle, parse_events, timings

PREFIX = "fl15-"
SWITCH = PREFIX + "sw"
SERVER, HOSTS = PREFIX + "server", (PREFIX + "hosta", PREFIX + "hostb")
LOOP = PREFIX + "loop"
SUBNET = "10.215.15"
ADDRESS = {SERVER: f"{SUBNET}.1", HOSTS[0]: f"{SUBNET}.2", HOSTS[1]: f"{SUBNET}.3"}
SERVER_PORT, RELAY_PORT = 9400, 9401
SAMPLE_S = 0.05
# The TLS probe's message: about one Flower message with the MNIST example's weights.
MODEL_MESSAGE_BYTES = 114_000


@dataclass(frozen=True)
class Profile:
    name: str
    rate: str | None  # tc rate ("1gbit"), None: unshaped
    rtt_ms: float
    burst: str = "256kb"
    relay: bool = False  # clients reach the server through the relay (which adds rtt_ms)


PROFILES = {
    "loopback": Profile("loopback", None, 0.0),
    "veth": Profile("veth", None, 0.0),
    "relay": Profile("relay", None, 0.0, relay=True),
    "lan": Profile("lan", "1gbit", 1.0, "512kb", relay=True),
    "wan": Profile("wan", "100mbit", 20.0, "64kb", relay=True),
}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result


def namespaces() -> list[str]:
    return [
        line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()
    ]


def teardown() -> None:
    """Delete every fl15-* namespace; their veths and the bridge go with them."""
    for ns in namespaces():
        if ns.startswith(PREFIX):
            sh("ip", "netns", "del", ns, check=False)


def setup() -> None:
    teardown()
    for ns in (SWITCH, SERVER, *HOSTS, LOOP):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", SWITCH, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", SWITCH, "link", "set", "br0", "up")
    for ns in (SERVER, *HOSTS):
        port = "v-" + ns[len(PREFIX) :]
        sh(
            "ip",
            "-n",
            ns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            SWITCH,
        )
        sh("ip", "-n", SWITCH, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ADDRESS[ns]}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")


def shape(profile: Profile) -> None:
    """Bandwidth on both ends of every link (egress of each host's eth0 and of its bridge port)."""
    for ns in (SERVER, *HOSTS):
        for where, dev in ((ns, "eth0"), (SWITCH, "v-" + ns[len(PREFIX) :])):
            sh("tc", "-n", where, "qdisc", "del", "dev", dev, "root", check=False)
            if profile.rate:
                sh(
                    "tc",
                    "-n",
                    where,
                    "qdisc",
                    "add",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    profile.rate,
                    "burst",
                    profile.burst,
                    "latency",
                    "100ms",
                )


def in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def flautim_fl(*args: str) -> list[str]:
    return [sys.executable, "-m", "flautim.fl", *args]


def wire_bytes(pid: int, dev: str) -> int:
    """rx + tx bytes of `dev` in the namespace of process `pid` (tx only for lo)."""
    with open(f"/proc/{pid}/net/dev") as stats:
        for line in stats:
            name, _, fields = line.partition(":")
            if name.strip() == dev:
                values = fields.split()
                rx, tx = int(values[0]), int(values[8])
                return tx if dev == "lo" else rx + tx
    raise RuntimeError(f"no {dev} in the namespace of process {pid}")


class Sampler:
    """(time, bytes) of one interface every SAMPLE_S, through a process parked in its namespace."""

    def __init__(self, ns: str, dev: str) -> None:
        self.parked = subprocess.Popen(in_ns(ns, "sleep", "86400"))
        self.dev = dev
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        while True:  # until `ip netns exec` has become `sleep` inside the namespace
            try:
                if os.readlink(f"/proc/{self.parked.pid}/ns/net") != os.readlink(
                    "/proc/self/ns/net"
                ):
                    break
            except OSError:
                pass
            time.sleep(0.01)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), wire_bytes(self.parked.pid, self.dev)))
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), wire_bytes(self.parked.pid, self.dev)))
        self.parked.kill()
        self.parked.wait()

    def at(self, when: float) -> int:
        """Bytes at the first sample taken at or after `when`."""
        return next((b for t, b in self.samples if t >= when), self.samples[-1][1])


def endpoints(
    profile: Profile,
) -> tuple[str, tuple[str, str], str, str, str, subprocess.Popen | None]:
    """Where a profile's processes run and meet: (server namespace, client namespaces, the
    server's listen address, the clients' server address, the counted interface, the relay)."""
    relay = None
    if profile.name == "loopback":
        server_ns, client_ns, listen = LOOP, (LOOP, LOOP), f"127.0.0.1:{SERVER_PORT}"
        connect, dev = listen, "lo"
    else:
        shape(profile)
        server_ns, client_ns, dev = SERVER, HOSTS, "eth0"
        listen = connect = f"{ADDRESS[SERVER]}:{SERVER_PORT}"
        if profile.relay:
            listen = f"127.0.0.1:{SERVER_PORT}"
            connect = f"{ADDRESS[SERVER]}:{RELAY_PORT}"
            relay = subprocess.Popen(
                in_ns(
                    SERVER,
                    sys.executable,
                    __file__,
                    "--relay",
                    connect,
                    listen,
                    str(profile.rtt_ms / 2),
                )
            )
    return server_ns, client_ns, listen, connect, dev, relay


def run_profile(
    profile: Profile, bundle: Path, work: Path, clients: int, rounds: int, scratch: Path
) -> dict:
    out = scratch / f"out-{profile.name}"
    logs = scratch / f"clients-{profile.name}.log"
    common = ["--clients", str(clients), "--rounds", str(rounds)]
    half = clients // 2
    id_ranges = (f"0-{half - 1}", f"{half}-{clients - 1}")
    server_ns, client_ns, listen, connect, dev, relay = endpoints(profile)
    sampler = Sampler(server_ns, dev)
    launched = time.time()
    with logs.open("w") as log:
        server = subprocess.Popen(
            in_ns(
                server_ns,
                *flautim_fl(
                    "server",
                    str(bundle),
                    "--data",
                    str(work / "server"),
                    "--out",
                    str(out),
                    "--listen",
                    listen,
                    *common,
                ),
            ),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        procs = [
            subprocess.Popen(
                in_ns(
                    ns,
                    *flautim_fl(
                        "clients",
                        str(bundle),
                        "--data-root",
                        str(work),
                        "--server",
                        connect,
                        "--ids",
                        ids,
                        *common,
                    ),
                ),
                stdout=log,
                stderr=log,
            )
            for ns, ids in zip(client_ns, id_ranges, strict=True)
        ]
        try:
            stdout, _ = server.communicate(timeout=1800)
        except BaseException:
            server.kill()
            server.wait()
            raise
        finally:
            ended = time.time()
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if relay is not None:
                relay.kill()
                relay.wait()
            sampler.stop()
    events = parse_events(stdout)
    result = timings(events, launched, ended, rounds)
    if not result["ok"]:
        last = [e for e in events if e["type"] in ("error", "run_finished")]
        raise RuntimeError(
            f"the {profile.name} run failed: {last}; log {logs}:\n{logs.read_text()[-1500:]}"
        )
    # Rounds follow each other with no gap, so a boundary between two of them in the counters
    # is blurred by the sampling; the whole run over its rounds is exact but for the set-up
    # (connections, hellos, byes: a few KB).
    result["total_bytes"] = sampler.samples[-1][1] - sampler.samples[0][1]
    result["round_bytes"] = result["total_bytes"] / rounds
    return result


def shrink_training_data(bundle: Path, train_digits: int) -> None:
    """Keep the first `train_digits` training digits (and a quarter as many validation
    digits) of the example's IDX files: less training per round, so the transport's share of
    a round shows on a loaded machine; the model, hence the bytes per round, is unchanged."""
    import gzip

    import numpy as np

    sys.path.insert(0, str(bundle))
    from dataset import IDX_FILES, read_idx

    sys.path.remove(str(bundle))
    for split, keep in (("train", train_digits), ("validation", max(1, train_digits // 4))):
        for name in IDX_FILES[split]:
            path = bundle / "data" / (name + ".gz")
            array = read_idx(path)[:keep]
            header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
                ">" + "I" * array.ndim, *array.shape
            )
            with gzip.open(path, "wb") as out:
                out.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# -- the latency relay -------------------------------------------------------------------------
async def delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float
) -> None:
    """Copy reader to writer, each chunk leaving `delay_s` after it arrived (order kept)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if chunk is None:
                break
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while chunk := await reader.read(1 << 16):
            queue.put_nowait((loop.time() + delay_s, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, None))
    await sender


async def relay_main(listen: str, target: str, delay_s: float) -> None:
    target_host, target_port = target.rsplit(":", 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(600):  # the server may still be importing when a client arrives
            try:
                up_reader, up_writer = await asyncio.open_connection(target_host, int(target_port))
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            writer.close()
            return
        try:
            await asyncio.gather(
                delayed_pipe(reader, up_writer, delay_s), delayed_pipe(up_reader, writer, delay_s)
            )
        except ConnectionError:
            writer.close()
            up_writer.close()

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await server.serve_forever()


# -- the transport alone: synthetic rounds ---------------------------------------------------------
# The real run's round time on a loaded 2-core machine swings by seconds, far more than a
# network adds; these rounds move the same messages (framed as transport/channel.py frames
# them, one TCP connection per client) with no torch, no Flower and no training, so what
# they time is the network's share of a round.
FRAME = struct.Struct(">cI")


def send_frame(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(FRAME.pack(kind, len(payload)) + payload)


def read_frame(sock: socket.socket) -> tuple[bytes, bytes]:
    def exactly(size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                raise ConnectionError("peer closed")
            data += chunk
        return bytes(data)

    kind, size = FRAME.unpack(exactly(FRAME.size))
    return kind, exactly(size)


def echo_server(listen: str, clients: int, rounds: int, size: int = MODEL_MESSAGE_BYTES) -> None:
    """Per round: a fit message to every client and its weights back, then an evaluate
    message to every client and a small reply; prints the rounds' seconds as JSON."""
    host, port = listen.rsplit(":", 1)
    server = socket.create_server((host, int(port)))
    conns = []
    while len(conns) < clients:
        sock, _ = server.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        read_frame(sock)  # hello
        conns.append(sock)
    replies: queue.Queue = queue.Queue()

    def collect(sock: socket.socket) -> None:
        while True:
            replies.put(read_frame(sock)[0])

    for sock in conns:
        threading.Thread(target=collect, args=(sock,), daemon=True).start()
    payload, times = os.urandom(size), []
    for _ in range(rounds):
        begin = time.perf_counter()
        for kind in (b"F", b"E"):
            for sock in conns:
                send_frame(sock, kind, payload)
            for _ in conns:
                replies.get()
        times.append(time.perf_counter() - begin)
    for sock in conns:
        send_frame(sock, b"B", b"")
    print(json.dumps(times), flush=True)


def echo_clients(connect: str, count: int, size: int = MODEL_MESSAGE_BYTES) -> None:
    """`count` clients, one connection each, answering like a client: weights for a fit."""
    host, port = connect.rsplit(":", 1)
    weights = os.urandom(size)

    def client() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_frame(sock, b"H", b"")
        while (kind := read_frame(sock)[0]) != b"B":
            send_frame(sock, b"R", weights if kind == b"F" else b"x" * 64)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_synthetic(profile: Profile, clients: int, rounds: int) -> dict:
    server_ns, client_ns, listen, connect, dev, relay = endpoints(profile)
    sampler = Sampler(server_ns, dev)
    half = clients // 2
    server = subprocess.Popen(
        in_ns(
            server_ns, sys.executable, __file__, "--echo-server", listen, str(clients), str(rounds)
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    procs = [
        subprocess.Popen(in_ns(ns, sys.executable, __file__, "--echo-clients", connect, str(n)))
        for ns, n in zip(client_ns, (half, clients - half), strict=True)
    ]
    try:
        stdout, _ = server.communicate(timeout=600)
    finally:
        for proc in (server, *procs, *([relay] if relay else [])):
            proc.kill()
            proc.wait()
        sampler.stop()
    times = json.loads(stdout)
    total = sampler.samples[-1][1] - sampler.samples[0][1]
    return {
        "round": statistics.median(times),
        "p90": sorted(times)[int(0.9 * (len(times) - 1))],
        "round_bytes": total / rounds,
    }


# -- what TLS on the channel would cost ----------------------------------------------------------
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server and a client context trusting one throwaway self-signed EC key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flautim-server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("flautim-server")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=folder / "cert.pem")
    shutil.rmtree(folder)
    return server, client


def channel_cpu(messages: int, size: int, tls: bool) -> tuple[float, float, str]:
    """CPU seconds (this process, both ends) to move `messages` x `size` bytes one way over a
    socket pair, and the CPU ms of the handshake; plain or TLS."""
    import socket

    left, right = socket.socketpair()
    cipher = "plain"
    handshake_cpu = 0.0
    if tls:
        server_ctx, client_ctx = tls_contexts()
        begin = time.process_time()
        result: dict = {}
        accept = threading.Thread(
            target=lambda: result.update(s=server_ctx.wrap_socket(right, server_side=True))
        )
        accept.start()
        left = client_ctx.wrap_socket(left, server_hostname="flautim-server")
        accept.join()
        right = result["s"]
        handshake_cpu = (time.process_time() - begin) * 1000
        cipher = f"{left.version()} {left.cipher()[0]}"
    payload = os.urandom(size)

    def drain() -> None:
        remaining = messages * size
        while remaining:
            remaining -= len(right.recv(1 << 20))

    begin = time.process_time()
    reader = threading.Thread(target=drain)
    reader.start()
    for _ in range(messages):
        left.sendall(payload)
    reader.join()
    cpu = time.process_time() - begin
    left.close()
    right.close()
    return cpu, handshake_cpu, cipher


def print_tls_cost(messages: int = 500, size: int = MODEL_MESSAGE_BYTES) -> None:
    plain, _, _ = channel_cpu(messages, size, tls=False)
    encrypted, handshake, cipher = channel_cpu(messages, size, tls=True)
    megabytes = messages * size / 1e6
    print(
        f"\nTLS on the channel ({messages} messages of {size / 1e3:.0f} KB over a socket pair, both ends in one process; CPU time):"
    )
    print(
        f"  plain {plain / megabytes * 1000:.2f} ms/MB; {cipher} {encrypted / megabytes * 1000:.2f} ms/MB "
        f"(+{(encrypted - plain) / megabytes * 1000:.2f} ms/MB); handshake {handshake:.1f} ms"
    )


# -- main ----------------------------------------------------------------------------------------
def check_can_run() -> str | None:
    if os.geteuid() != 0:
        return "bench_netns.py needs root: it creates network namespaces, veth pairs, a bridge and tc qdiscs (run it as root, e.g. sudo)"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"bench_netns.py needs {' and '.join(missing)} (Debian: apt-get install iproute2)"
    return None


def profile_names(text: str) -> list[Profile]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown profile {unknown[0]!r}; choose from {', '.join(PROFILES)}"
        )
    return [PROFILES[n] for n in names]


def synthetic_main(args: argparse.Namespace) -> int:
    print(
        f"Synthetic rounds: {args.clients} clients on 2 client hosts, one connection each; per round "
        f"{MODEL_MESSAGE_BYTES / 1e3:.0f} KB to each and back (fit), {MODEL_MESSAGE_BYTES / 1e3:.0f} KB to each and "
        f"64 B back (evaluate); {args.rounds} rounds x {args.repeat}; load average {os.getloadavg()[0]:.1f} at start"
    )
    runs: dict[str, list[dict]] = {p.name: [] for p in args.profiles}
    try:
        setup()
        for _ in range(args.repeat):
            for profile in args.profiles:
                runs[profile.name].append(run_synthetic(profile, args.clients, args.rounds))
    finally:
        teardown()
    print(f"\n{'profile':10} {'link':>16} {'round ms':>9} {'p90 ms':>8} {'KB/round':>9}")
    for name, rs in runs.items():
        print(
            f"{name:10} {link_of(PROFILES[name]):>16} {statistics.median(r['round'] for r in rs) * 1e3:9.1f} "
            f"{statistics.median(r['p90'] for r in rs) * 1e3:8.1f} {statistics.median(r['round_bytes'] for r in rs) / 1e3:9.0f}"
        )
    return 0


def link_of(profile: Profile) -> str:
    if profile.name == "loopback":
        return "127.0.0.1"
    return f"{profile.rate or 'unshaped'}, {profile.rtt_ms:g} ms{'*' * profile.relay}"


def stop_cleanly(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients", type=int, default=10, help="clients, split over the two client hosts (>= 2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help=">= 2 (round 1 is left out of the mean)"
    )
    parser.add_argument(
        "--profiles",
        type=profile_names,
        default=list(PROFILES.values()),
        help="comma-separated: " + ",".join(PROFILES),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per profile, interleaved; the table shows medians",
    )
    parser.add_argument(
        "--train-digits",
        type=int,
        default=4000,
        help="training digits kept, of 4,000 (a quarter as many validation digits)",
    )
    parser.add_argument(
        "--tls-only",
        action="store_true",
        help="only measure what TLS on the channel costs (no root needed)",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="time the transport alone: the rounds' messages with no training (--rounds of them)",
    )
    parser.add_argument("--echo-server", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--echo-clients", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--relay", nargs=3, metavar=("LISTEN", "TARGET", "ONE_WAY_MS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.relay:
        asyncio.run(relay_main(args.relay[0], args.relay[1], float(args.relay[2]) / 1000))
        return 0
    if args.echo_server:
        echo_server(args.echo_server[0], int(args.echo_server[1]), int(args.echo_server[2]))
        return 0
    if args.echo_clients:
        echo_clients(args.echo_clients[0], int(args.echo_clients[1]))
        return 0
    if args.tls_only:
        print_tls_cost()
        return 0
    if args.clients < 2 or args.rounds < 2:
        parser.error("--clients and --rounds must be at least 2")
    # Unwind to the teardown on SIGTERM, and on Ctrl-C even when started in the background
    # (where the shell had SIGINT ignored).
    signal.signal(signal.SIGTERM, stop_cleanly)
    signal.signal(signal.SIGINT, stop_cleanly)
    if (problem := check_can_run()) is not None:
        print(problem, file=sys.stderr)
        return 2
    if args.synthetic:
        return synthetic_main(args)
    import flautim

    print(
        f"MNIST-5k ({args.train_digits} training digits), {args.clients} clients on 2 client hosts, {args.rounds} rounds x 1 local epoch, fast transport "
        f"(flautim from {Path(flautim.__file__).parent}); {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start"
    )
    runs: dict[str, list[dict]] = {p.name: [] for p in args.profiles}
    with tempfile.TemporaryDirectory(prefix="bench-netns-") as tmp:
        scratch = Path(tmp)
        bundle = make_bundle(scratch, args.clients, args.rounds)
        if args.train_digits < 4000:
            shrink_training_data(bundle, args.train_digits)
        work = scratch / "work"
        subprocess.run(
            flautim_fl("prepare", str(bundle), str(work), "--clients", str(args.clients)),
            check=True,
            capture_output=True,
        )
        try:
            setup()
            for attempt in range(args.repeat):
                for profile in args.profiles:
                    runs[profile.name].append(
                        run_profile(profile, bundle, work, args.clients, args.rounds, scratch)
                    )
                    print(
                        f"  ({profile.name}, run {attempt + 1}) round {runs[profile.name][-1]['round']:.3f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            teardown()
    results = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0] if key != "ok"}
        for name, rs in runs.items()
    }
    print(
        f"\n{'profile':10} {'link':>16} {'total s':>8} {'to round 1 s':>13} {'round 2-' + str(args.rounds) + ' s':>11} "
        f"{'total KB':>9} {'KB/round':>9} {'KB/client/round':>16}"
    )
    for name, r in results.items():
        p = PROFILES[name]
        link = link_of(p)
        print(
            f"{name:10} {link:>16} {r['total']:8.2f} {r['first_round']:13.2f} {r['round']:11.3f} "
            f"{r['total_bytes'] / 1e3:9.0f} {r['round_bytes'] / 1e3:9.0f} {r['round_bytes'] / args.clients / 1e3:16.0f}"
        )
    print_tls_cost()
    return 0


if __name__ == "__main__":
    sys.exit(main())
