"""Python sources that make the compiler give up (MemoryError, RecursionError, nesting
limits, NUL bytes) are refused with a 400 naming the file and what is wrong, on the pages
and on the JSON API, and leave nothing stored.

Each source below raises what its name says from `ast.parse` on Python 3.11 (checked in
test_each_source_breaks_the_parser_as_named), all under the 1 MB limit on code."""

from __future__ import annotations

import ast
import io

import pytest

from tests.experiments_support import setup_project, upload
from tests.test_uploads import assert_nothing_stored, page_error

PATHOLOGICAL = {
    # name: (source, what ast.parse raises)
    "open_parentheses": ("(" * 200_000, SyntaxError),
    "nested_lists": ("x = " + "[" * 5_000 + "]" * 5_000, SyntaxError),
    "long_sum": ("x = " + "a+" * 400_000 + "a", RecursionError),
    "attribute_chain": ("x = a" + ".b" * 300_000, RecursionError),
    "call_chain": ("x = f" + "()" * 300_000, RecursionError),
    "unary_minus": ("x = " + "-" * 100_000 + "1", MemoryError),
    "lambdas": ("x = " + "lambda:" * 100_000 + "1", MemoryError),
    # Parses, but deeper than recursive tools (ast.NodeVisitor, compile()) can walk.
    "deep_but_parses": ("x = " + "a+" * 1_200 + "a", None),
    "nul_byte": ("x = 1\n\0\n", (SyntaxError, ValueError)),
}
EXPECTED_WORDS = {
    "open_parentheses": "too many nested parentheses",
    "nested_lists": "too many nested parentheses",
    "nul_byte": "byte nulo",
}
TOO_NESTED = "aninha expressões em mais níveis"

# Every case is sent as model code; one case as each kind of source upload too.
# (page slug, page field, API path, API field)
KINDS = [
    ("model-code", "file", "models", "model_file"),
    ("hyperparameters", "file", "hyperparameters", "hyperparameters_file"),
    ("datasets", "dataset_file", "datasets", "dataset_file"),
]


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


def _words(name: str) -> str:
    return EXPECTED_WORDS.get(name, TOO_NESTED)


@pytest.mark.parametrize("name", PATHOLOGICAL)
def test_each_source_breaks_the_parser_as_named(name):
    source, raises = PATHOLOGICAL[name]
    assert len(source.encode()) < 1024 * 1024
    if raises is None:
        tree = ast.parse(source)

        class Visitor(ast.NodeVisitor):
            pass

        with pytest.raises(RecursionError):
            Visitor().visit(tree)
    else:
        with pytest.raises(raises):
            ast.parse(source)


CASES = [(name, KINDS[0]) for name in PATHOLOGICAL] + [("long_sum", kind) for kind in KINDS[1:]]
CASE_IDS = [f"{name}-{kind[0]}" for name, kind in CASES]


@pytest.mark.parametrize("name, kind", CASES, ids=CASE_IDS)
def test_page_upload_is_a_400_naming_file_and_reason(app, client, ctx, db_session, name, kind):
    slug, field, _api, _api_field = kind
    source = PATHOLOGICAL[name][0].encode()
    filename = f"{name}.py"
    extra = {"name": "D"} if slug == "datasets" else {}
    r = upload(client, ctx["project_id"], slug, {field: (filename, source)}, extra)
    assert r.status_code == 400
    html = page_error(r)
    assert filename in html and _words(name) in html
    # The error shows the start of a huge line, not the whole of it.
    assert len(html) < 100_000
    assert_nothing_stored(app, db_session)


@pytest.mark.parametrize("name, kind", CASES, ids=CASE_IDS)
def test_api_upload_is_a_400_naming_file_and_reason(app, client, ctx, db_session, name, kind):
    _slug, _field, api, api_field = kind
    from flautim.models import User
    from flautim.web.api.tokens import create_token

    _token, secret = create_token(db_session.get(User, ctx["owner"]), "t")
    filename = f"{name}.py"
    r = client.post(
        f"/api/v1/projects/{ctx['project_id']}/{api}",
        headers={"Authorization": f"Bearer {secret}"},
        data={"name": "x", api_field: (io.BytesIO(PATHOLOGICAL[name][0].encode()), filename)},
        content_type="multipart/form-data",
    )
    assert r.status_code == 400, r.get_data(as_text=True)[:2000]
    error = r.json["error"]
    assert error["field"] == api_field
    assert filename in error["message"] and _words(name) in error["message"]
    assert len(r.get_data()) < 10_000
    assert_nothing_stored(app, db_session)


def test_ordinary_deep_code_is_still_accepted(app):
    """Nesting as deep as real code goes (a 200-term sum, 150 nested lists) passes."""
    from flautim.web.uploads.sources import check_syntax

    with app.test_request_context():
        check_syntax("x = " + "a+" * 200 + "a\n", "api.py", "model_file")
        check_syntax("x = " + "[" * 150 + "]" * 150 + "\n", "api.py", "model_file")
