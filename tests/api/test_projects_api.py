"""Projects through the API: only the token user's memberships, paginated, 404 elsewhere."""

from __future__ import annotations

from .conftest import bearer


def test_lists_only_member_projects_with_role_and_pagination(client, make_user, make_project, make_token):
    ana = make_user("ana@example.org")
    bia = make_user("bia@example.org")
    mine = [make_project(f"P{i}", ana) for i in range(3)]
    shared = make_project("Compartilhado", bia, viewers=[ana])
    make_project("Alheio", bia)
    headers = bearer(make_token(ana))

    everything = client.get("/api/v1/projects?limit=100", headers=headers).json
    assert everything["total"] == 4
    by_id = {p["id"]: p for p in everything["items"]}
    assert set(by_id) == {*mine, shared}
    assert by_id[shared]["role"] == "viewer" and by_id[mine[0]]["role"] == "owner"
    # Allow-list: nothing but the documented keys.
    assert set(by_id[shared]) == {"id", "name", "description", "created_at", "archived", "role"}

    first = client.get("/api/v1/projects?limit=2&offset=0", headers=headers).json
    second = client.get("/api/v1/projects?limit=2&offset=2", headers=headers).json
    assert len(first["items"]) == 2 and len(second["items"]) == 2
    assert {p["id"] for p in first["items"]} | {p["id"] for p in second["items"]} == set(by_id)


def test_other_projects_are_404(client, make_user, make_project, make_token):
    ana = make_user("ana@example.org")
    bia = make_user("bia@example.org")
    theirs = make_project("Alheio", bia)
    headers = bearer(make_token(ana))
    response = client.get(f"/api/v1/projects/{theirs}", headers=headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/projects/999999", headers=headers).status_code == 404


def test_bad_pagination_is_400_naming_the_field(client, make_user, make_token):
    headers = bearer(make_token(make_user("ana@example.org")))
    for query, field in (("limit=0", "limit"), ("limit=abc", "limit"), ("limit=100000", "limit"), ("offset=-1", "offset")):
        response = client.get(f"/api/v1/projects?{query}", headers=headers)
        assert response.status_code == 400, query
        assert response.json["error"]["field"] == field
        assert response.json["error"]["code"] == "validation_error"
