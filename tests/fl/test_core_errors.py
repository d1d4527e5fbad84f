"""FlautimError: readable message, event fields, and the user's frame found in a traceback."""

from __future__ import annotations

import pytest

from flautim.fl.errors import FlautimError, user_code_error
from flautim.fl.events import EventWriter, parse_line


def test_message_and_event_fields_round_trip(tmp_path):
    error = FlautimError("loss is nan", where="api.py:12", hint="lower the learning rate", client=3)
    assert str(error) == "api.py:12: loss is nan (client 3). Hint: lower the learning rate"
    stream = (tmp_path / "events").open("w+")
    EventWriter(stream).emit("error", **error.event_fields())
    stream.seek(0)
    event = parse_line(stream.readline())
    assert (event["what"], event["where"], event["client"], event["kind"]) == (
        "loss is nan", "api.py:12", 3, "user_code")


def test_user_frame_is_the_innermost_in_the_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "helpers.py").write_text("def inner(x):\n    return x['missing']\n")
    (bundle / "api.py").write_text("from helpers import inner\n\ndef outer():\n    return inner({})\n")
    import sys

    sys.path.insert(0, str(bundle))
    try:
        namespace: dict = {}
        exec(compile((bundle / "api.py").read_text(), str(bundle / "api.py"), "exec"), namespace)
        with pytest.raises(KeyError) as info:
            namespace["outer"]()
    finally:
        sys.path.remove(str(bundle))
        sys.modules.pop("helpers", None)
    error = user_code_error(info.value, bundle, "training failed", client=1)
    assert error.where == "helpers.py:2"
    assert error.what == "training failed: KeyError: 'missing'"
    assert "api.py" in error.traceback and str(bundle) not in error.traceback
    assert user_code_error(error, bundle, "ignored") is error  # already explained: kept
