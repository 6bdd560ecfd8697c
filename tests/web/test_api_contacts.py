"""/api/contacts and /api/organizations as an agent's client uses them."""

from __future__ import annotations

import io
from typing import Any

from aiohttp.test_utils import TestClient

H = dict[str, str]


async def create(client: TestClient, headers: H, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/contacts", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_create_read_and_match_by_phone(client: TestClient, agent_headers: H) -> None:
    created = await create(client, agent_headers, first_name="Jürgen", last_name="Müller",
                           company="Müller Haustechnik GmbH", **{"class": "A"},
                           phones=[{"number": "030 1234567-10"}, {"number": "+49 30 1234567-0", "kind": "switchboard"}],
                           emails=["J.Mueller@Mueller-Haustechnik.example"])
    assert created["organization"]["name"] == "Müller Haustechnik GmbH"
    assert created["emails"] == ["j.mueller@mueller-haustechnik.example"]
    assert [p["e164"] for p in created["phones"]] == ["+4930123456710", "+493012345670"]
    fetched = await (await client.get(f"/api/contacts/{created['id']}", headers=agent_headers)).json()
    assert fetched["name"] == "Jürgen Müller" and fetched["class"] == "A"

    match = await (await client.get("/api/contacts", params={"phone": "+49 (0)30 1234567-10"},
                                    headers=agent_headers)).json()
    assert [m["id"] for m in match["matches"]] == [created["id"]]
    assert match["number"]["e164"] == "+4930123456710" and match["ambiguous"] is False


async def test_search_by_text_and_email(client: TestClient, agent_headers: H) -> None:
    jurgen = await create(client, agent_headers, first_name="Jürgen", last_name="Müller", emails=["jm@example.com"])
    await create(client, agent_headers, first_name="Anna", last_name="Schmidt", company="Weiß & Söhne")
    by_text = await (await client.get("/api/contacts", params={"q": "MUELLER"}, headers=agent_headers)).json()
    assert [c["id"] for c in by_text["items"]] == [jurgen["id"]]
    by_company = await (await client.get("/api/contacts", params={"q": "weiss"}, headers=agent_headers)).json()
    assert [(c["last_name"], c["organization"]["name"]) for c in by_company["items"]] == [("Schmidt", "Weiß & Söhne")]
    listed = await (await client.get("/api/contacts", headers=agent_headers)).json()
    assert [(c["name"], c["emails"], c["organization"]) for c in listed["items"]] == [
        ("Jürgen Müller", ["jm@example.com"], None), ("Anna Schmidt", [], by_company["items"][0]["organization"])]
    by_email = await (await client.get("/api/contacts", params={"email": " JM@Example.com"},
                                       headers=agent_headers)).json()
    assert [c["id"] for c in by_email["items"]] == [jurgen["id"]]
    like_escape = await (await client.get("/api/contacts", params={"q": "%"}, headers=agent_headers)).json()
    assert like_escape["items"] == []


async def test_patch_changes_only_what_is_sent(client: TestClient, agent_headers: H) -> None:
    contact = await create(client, agent_headers, first_name="Anna", last_name="Schmidt",
                           phones=[{"number": "040 123456"}], city="Hamburg")
    response = await client.patch(f"/api/contacts/{contact['id']}", headers=agent_headers,
                                  json={"last_name": "Schmidt-Weber", "phones": [{"number": "0171 1112223",
                                                                                  "kind": "mobile"}]})
    patched = await response.json()
    assert response.status == 200
    assert patched["last_name"] == "Schmidt-Weber" and patched["address"]["city"] == "Hamburg"
    assert [p["kind"] for p in patched["phones"]] == ["mobile"]
    search = await (await client.get("/api/contacts", params={"q": "schmidt-weber"}, headers=agent_headers)).json()
    assert [c["id"] for c in search["items"]] == [contact["id"]]
    old_number = await (await client.get("/api/contacts", params={"phone": "040 123456"},
                                         headers=agent_headers)).json()
    assert old_number["matches"] == []


async def test_notes_make_a_paged_timeline_newest_first(client: TestClient, agent_headers: H) -> None:
    contact = await create(client, agent_headers, first_name="Petra", last_name="Schön", company="Bäckerei Schön")
    for n in range(5):
        response = await client.post(f"/api/contacts/{contact['id']}/notes", json={"text": f"Notiz {n}"},
                                     headers=agent_headers)
        assert response.status == 201
        assert (await response.json())["agent"]["name"] == "agent"
    first = await (await client.get(f"/api/contacts/{contact['id']}/history", params={"limit": "2"},
                                    headers=agent_headers)).json()
    assert [e["body"] for e in first["items"]] == ["Notiz 4", "Notiz 3"]
    newest = first["items"][0]
    assert newest["agent"]["name"] == "agent" and newest["kind"] == "note"
    assert newest["contact_ids"] == [contact["id"]] and newest["organization_ids"] == [contact["organization"]["id"]]
    rest = await (await client.get(f"/api/contacts/{contact['id']}/history",
                                   params={"limit": "10", "before": first["next"]}, headers=agent_headers)).json()
    assert [e["body"] for e in rest["items"]] == ["Notiz 2", "Notiz 1", "Notiz 0"] and rest["next"] is None
    company = await (await client.get(f"/api/organizations/{contact['organization']['id']}/history",
                                      headers=agent_headers)).json()
    assert len(company["items"]) == 5  # the company view shows what concerns its people


async def test_organizations(client: TestClient, agent_headers: H) -> None:
    response = await client.post("/api/organizations", headers=agent_headers, json={
        "name": "Alpenblick Hotel AG", "class": "B", "domain": "alpenblick.example",
        "phones": [{"number": "+43 662 845511-0", "kind": "switchboard"}]})
    assert response.status == 201
    org = await response.json()
    match = await (await client.get("/api/contacts", params={"phone": "+43 662 845511 12"},
                                    headers=agent_headers)).json()
    assert [(m["kind"], m["id"], m["via"]) for m in match["matches"]] == [("organization", org["id"], "switchboard")]
    listed = await (await client.get("/api/organizations", params={"q": "alpen"}, headers=agent_headers)).json()
    assert [(o["id"], o["phones"][0]["e164"]) for o in listed["items"]] == [(org["id"], "+436628455110")]
    member = await create(client, agent_headers, first_name="Katharina", last_name="Huber",
                          organization_id=org["id"])
    assert member["organization"] == {"id": org["id"], "name": "Alpenblick Hotel AG", "class": "B"}
    note = await client.post(f"/api/organizations/{org['id']}/notes", json={"text": "Termin"}, headers=agent_headers)
    assert note.status == 201


async def test_delete_is_for_admins(client: TestClient, agent_headers: H, admin_headers: H) -> None:
    contact = await create(client, agent_headers, first_name="Weg", last_name="Damit", phones=[{"number": "0228 4455"}])
    assert (await client.delete(f"/api/contacts/{contact['id']}", headers=agent_headers)).status == 403
    assert (await client.delete(f"/api/contacts/{contact['id']}", headers=admin_headers)).status == 204
    assert (await client.get(f"/api/contacts/{contact['id']}", headers=agent_headers)).status == 404
    match = await (await client.get("/api/contacts", params={"phone": "0228 4455"}, headers=agent_headers)).json()
    assert match["matches"] == []


async def error_of(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/json"
    return (await response.json())["error"]


async def test_bad_input_gets_clear_json_errors(client: TestClient, agent_headers: H) -> None:
    cases = [
        (client.post("/api/contacts", data=b"{not json", headers={**agent_headers, "Content-Type": "application/json"}),
         400, "bad_request"),
        (client.post("/api/contacts", data=b"first_name=x", headers={**agent_headers,
                                                                      "Content-Type": "text/plain"}), 400, "bad_request"),
        (client.post("/api/contacts", json={"first_name": "x", "class": "Z"}, headers=agent_headers), 422,
         "validation_failed"),
        (client.post("/api/contacts", json={"first_name": "x", "shoe_size": 44}, headers=agent_headers), 422,
         "validation_failed"),
        (client.post("/api/contacts", json={}, headers=agent_headers), 422, "validation_failed"),
        (client.post("/api/contacts", json=[1, 2], headers=agent_headers), 422, "validation_failed"),
        (client.post("/api/contacts", json={"first_name": "x", "organization_id": 999}, headers=agent_headers),
         422, "validation_failed"),
        (client.get("/api/contacts/999", headers=agent_headers), 404, "not_found"),
        (client.get("/api/contacts/abc", headers=agent_headers), 400, "bad_request"),
        (client.get("/api/contacts/99999999999999999999", headers=agent_headers), 400, "bad_request"),
        (client.get("/api/contacts", params={"limit": "lots"}, headers=agent_headers), 400, "bad_request"),
        (client.get("/api/contacts", params={"q": "a", "phone": "1"}, headers=agent_headers), 400, "bad_request"),
        (client.get("/api/contacts/1/history", params={"before": "garbage"}, headers=agent_headers), 404,
         "not_found"),
        (client.post("/api/contacts/999/notes", json={"text": "x"}, headers=agent_headers), 404, "not_found"),
        (client.post("/api/contacts", data=io.BytesIO(b"x" * (1024 * 1024 + 1)),
                     headers={**agent_headers, "Content-Type": "application/json"}), 413, "body_too_large"),
    ]
    for request, status, code in cases:
        response = await request
        assert (response.status, (await error_of(response))["code"]) == (status, code), await response.text()


async def test_validation_errors_name_the_field(client: TestClient, agent_headers: H) -> None:
    response = await client.post("/api/contacts", json={"first_name": "x", "phones": [{"kind": "fax"}]},
                                 headers=agent_headers)
    details = (await error_of(response))["details"]
    assert {"field": "phones.0.number", "problem": "Field required"} in details


async def test_bad_cursor_is_a_400(client: TestClient, agent_headers: H) -> None:
    contact = await create(client, agent_headers, first_name="A", last_name="B")
    response = await client.get(f"/api/contacts/{contact['id']}/history", params={"before": "garbage"},
                                headers=agent_headers)
    assert response.status == 400 and "cursor" in (await error_of(response))["message"]


async def test_unusable_numbers_are_reported_not_silently_dropped(client: TestClient, agent_headers: H) -> None:
    contact = await create(client, agent_headers, first_name="A", last_name="B",
                           phones=[{"number": "ruf mich an"}], emails=["not-an-address"])
    assert contact["phones"][0]["e164"] is None and contact["phones"][0]["raw"] == "ruf mich an"
    assert any("ruf mich an" in w for w in contact["warnings"])
    assert any("not-an-address" in w for w in contact["warnings"])
