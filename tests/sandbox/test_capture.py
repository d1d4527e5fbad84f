"""Line capture with a cap, and copying checkpoints without following planted links."""

import hashlib
import os

import pytest

from flautim.sandbox.capture import MAX_LINE_CHARS, pump_lines
from flautim.worker.ingest import CheckpointRejected, copy_checkpoint


class Lines:
    def __init__(self):
        self.rows = []

    def line(self, source, stream, text):
        self.rows.append((source, stream, text))

    def phase(self, name):
        pass


def test_lines_are_split_across_chunks_and_labelled():
    sink = Lines()
    pump_lines([b"hel", b"lo\nwor", b"ld\n\xff bad utf8", b"\n", b"last"], sink, "client-3", "stderr", 10_000)
    assert sink.rows == [
        ("client-3", "stderr", "hello"),
        ("client-3", "stderr", "world"),
        ("client-3", "stderr", "\ufffd bad utf8"),
        ("client-3", "stderr", "last"),
    ]


def test_superlink_lines_of_the_server_container_get_their_own_source():
    sink = Lines()
    pump_lines([b"[superlink] INFO up\nuser print\n"], sink, "server", "stderr", 10_000)
    pump_lines([b"[superlink] on stdout\n"], sink, "server", "stdout", 10_000)
    pump_lines([b"[superlink] from a client\n"], sink, "client-0", "stderr", 10_000)
    assert sink.rows == [
        ("superlink", "stderr", "INFO up"),
        ("server", "stderr", "user print"),
        ("server", "stdout", "[superlink] on stdout"),
        ("client-0", "stderr", "[superlink] from a client"),
    ]


def test_output_past_the_cap_is_dropped_with_a_notice_but_events_still_pass():
    sink = Lines()
    event = b'@flautim-event {"v":1}'
    chunks = [b"x" * 99 + b"\n"] * 50 + [event + b"\n"] + [b"y" * 99 + b"\n"] * 50
    read = pump_lines(chunks, sink, "server", "stdout", 1000)
    assert read == 100 * 100 + len(event) + 1
    assert [r[2] for r in sink.rows if r[0] == "server"] == ["x" * 99] * 10 + [event.decode()]
    notices = [r for r in sink.rows if r[0] == "platform"]
    assert len(notices) == 1 and "1000 bytes" in notices[0][2]


def test_reading_stops_at_the_hard_limit():
    sink = Lines()

    def endless():
        while True:
            yield b"z" * 999 + b"\n"

    read = pump_lines(endless(), sink, "client-0", "stdout", 1000)
    assert read <= 1000 * 20 + 1000
    assert "stopped reading" in sink.rows[-1][2]


def test_the_event_stream_is_read_to_its_end_past_the_hard_limit():
    sink = Lines()
    chunks = [b"z" * 999 + b"\n"] * 100 + [b'@flautim-event {"last": 1}\n']
    pump_lines(chunks, sink, "server", "stdout", 1000)
    assert sink.rows[-1] == ("server", "stdout", '@flautim-event {"last": 1}')


def test_a_huge_line_is_cut():
    sink = Lines()
    pump_lines([b"y" * (MAX_LINE_CHARS * 2) + b"\n"], sink, "server", "stdout", 10**7)
    assert len(sink.rows[0][2]) < MAX_LINE_CHARS + 10


def test_nul_bytes_are_removed():
    sink = Lines()
    pump_lines([b"a\x00b\n"], sink, "server", "stdout", 100)
    assert sink.rows == [("server", "stdout", "ab")]


def test_checkpoint_is_copied_with_its_hash(tmp_path):
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "model.pt").write_bytes(b"weights" * 100)
    size, digest = copy_checkpoint(out, "ckpt/model.pt", tmp_path / "store" / "round-1.pt")
    assert size == 700
    assert digest == hashlib.sha256(b"weights" * 100).hexdigest()
    assert (tmp_path / "store" / "round-1.pt").read_bytes() == b"weights" * 100


@pytest.mark.parametrize("relative", ["../secret", "/etc/passwd", "a/../../secret", ""])
def test_checkpoint_paths_must_stay_inside(tmp_path, relative):
    (tmp_path / "out").mkdir()
    with pytest.raises(CheckpointRejected):
        copy_checkpoint(tmp_path / "out", relative, tmp_path / "dest")


def test_planted_symlinks_are_never_followed(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("the worker's secret")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(secret, out / "model.pt")
    os.symlink(tmp_path, out / "dir")
    with pytest.raises(CheckpointRejected):
        copy_checkpoint(out, "model.pt", tmp_path / "dest1")
    with pytest.raises(CheckpointRejected):
        copy_checkpoint(out, "dir/host-secret", tmp_path / "dest2")
    assert not (tmp_path / "dest1").exists() and not (tmp_path / "dest2").exists()


def test_fifos_and_oversize_files_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "pipe.pt")
    with pytest.raises(CheckpointRejected, match="regular"):
        copy_checkpoint(out, "pipe.pt", tmp_path / "d1")
    (out / "big.pt").write_bytes(b"0" * 2000)
    with pytest.raises(CheckpointRejected, match="larger"):
        copy_checkpoint(out, "big.pt", tmp_path / "d2", max_bytes=1000)
