"""End to end on loopback: a phone system posts call events, the ringing agent's WebSocket gets the pop."""

from __future__ import annotations

import asyncio

from conftest import Office

MUELLER_DIRECT = "+49 30 1234567-10"  # Jürgen Müller's work number
WEISS_VIA_SWITCHBOARD = "030 1234567-55"  # a Müller Haustechnik extension nobody stored


async def test_the_ringing_agent_gets_the_pop_with_the_customer_file(office: Office) -> None:
    anna, ben = await office.agent("anna"), await office.agent("ben")
    await office.phone.ring("c-1", MUELLER_DIRECT, "10")
    pop = await anna.next_of("call.ringing")
    assert pop["call"]["state"] == "ringing" and pop["call"]["direction"] == "in"
    assert pop["caller"]["e164"] == "+4930123456710"
    best = pop["matches"][0]
    assert (best["kind"], best["name"], best["company"], best["via"]) == (
        "contact", "Jürgen Müller", "Müller Haustechnik GmbH", "exact")
    assert best["open_tasks"] == 1 and best["tasks"][0]["title"] == "Angebot A-2291 nachfassen"
    assert len(best["recent"]) <= 5 and all({"kind", "occurred_at", "title"} <= set(e) for e in best["recent"])
    assert pop["seq"] > anna.hello["seq"] and pop["ts"]
    assert await ben.nothing_within()  # extension 10 is Anna's: Ben's screen stays quiet


async def test_an_unknown_direct_dial_matches_the_company_via_its_switchboard(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("c-2", WEISS_VIA_SWITCHBOARD, "10")
    pop = await anna.next_of("call.ringing")
    assert [(m["kind"], m["name"], m["via"], m["direct_dial"]) for m in pop["matches"]] == [
        ("organization", "Müller Haustechnik GmbH", "switchboard", "55")]


async def test_a_shared_number_shows_every_file_and_says_so(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("c-3", "089 2345678", "10")
    pop = await anna.next_of("call.ringing")
    assert pop["ambiguous"] is True
    assert {m["name"] for m in pop["matches"]} >= {"Petra Schön", "Lukas Schön"}


async def test_unmapped_targets_go_to_every_agent(office: Office) -> None:
    clients = [await office.agent(name) for name in ("anna", "ben", "carla")]
    await office.phone.ring("c-4", "+49 40 3456789", "queue-sales")
    pops = [await client.next_of("call.ringing") for client in clients]
    assert {pop["routed"] for pop in pops} == {"fallback"}
    assert pops[0]["matches"][0]["name"] == "Emma Schneider"


async def test_answer_tells_the_others_who_took_it_and_hangup_files_the_call(office: Office) -> None:
    anna, ben = await office.agent("anna"), await office.agent("ben")
    await office.phone.ring("c-5", MUELLER_DIRECT, "10", "11")
    await anna.next_of("call.ringing"), await ben.next_of("call.ringing")
    await office.phone.answer("c-5", "11")
    answered = await anna.next_of("call.answered")
    assert answered["by"]["name"] == "ben" and answered["call"]["state"] == "answered"
    await office.phone.hang_up("c-5")
    ended = await anna.next_of("call.ended")
    assert ended["call"]["state"] == "completed" and ended["call"]["duration"] is not None
    contact_id = ended["call"]["matches"][0]["id"]
    history = await office.get(f"/api/contacts/{contact_id}/history")
    call_entry = history["items"][0]
    assert call_entry["kind"] == "call" and call_entry["data"]["direction"] == "in"
    assert call_entry["data"]["state"] == "completed" and call_entry["call_id"] == ended["call"]["id"]


async def test_the_same_event_twice_is_stored_and_popped_once(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("c-6", MUELLER_DIRECT, "10")
    await office.phone.ring("c-6", MUELLER_DIRECT, "10")
    first = await anna.next_of("call.ringing")
    assert await anna.nothing_within()
    await office.phone.hang_up("c-6")
    await office.phone.hang_up("c-6")
    await anna.next_of("call.ended")
    assert await anna.nothing_within()
    calls = await office.get("/api/calls")
    assert [c["provider_call_id"] for c in calls["items"]] == ["c-6"]
    assert first["call"]["id"] == calls["items"][0]["id"]


async def test_a_hangup_that_overtakes_its_answer_still_ends_completed(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("c-7", MUELLER_DIRECT, "10")
    await office.phone.hang_up("c-7")
    assert (await anna.next_of("call.ended"))["call"]["state"] == "missed"
    await office.phone.answer("c-7", "10")
    corrected = await anna.next_of("call.ended")
    assert corrected["corrected"] is True and corrected["call"]["state"] == "completed"
    call = await office.get(f"/api/calls/{corrected['call']['id']}")
    assert call["state"] == "completed" and call["task_id"] is None
    tasks = await office.get("/api/tasks")
    assert not [t for t in tasks["items"] if corrected["call"]["id"] in t["call_ids"]]


async def test_two_sessions_of_one_agent_both_get_the_pop(office: Office) -> None:
    desk, laptop = await office.agent("anna"), await office.agent("anna")
    await office.phone.ring("c-8", MUELLER_DIRECT, "10")
    one, two = await desk.next_of("call.ringing"), await laptop.next_of("call.ringing")
    assert one == two


async def test_resume_replays_exactly_what_a_dropped_client_missed(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("r-1", MUELLER_DIRECT, "10")
    seen = (await anna.next_of("call.ringing"))["seq"]
    await anna.close()
    await office.phone.hang_up("r-1")  # missed: call.ended and task.created
    await office.phone.ring("r-2", "+49 40 3456789", "10")
    back = await office.agent("anna")
    await back.send({"type": "resume", "after": seen})
    replayed = [await back.next() for _ in range(3)]
    assert [m["type"] for m in replayed] == ["task.created", "call.ended", "call.ringing"]
    assert [m["seq"] for m in replayed] == [seen + 1, seen + 2, seen + 3]
    done = await back.next()
    assert done["type"] == "resumed" and done["replayed"] == 3 and done["complete"] is True
    await office.phone.ring("r-3", MUELLER_DIRECT, "10")
    assert (await back.next())["seq"] == seen + 4  # live again, nothing twice
    assert await back.nothing_within()


async def test_resume_at_connect_time_with_after(office: Office) -> None:
    anna = await office.agent("anna")
    start = anna.hello["seq"]
    await anna.close()
    await office.phone.ring("r-9", MUELLER_DIRECT, "10")
    back = await office.agent("anna", after=start)
    assert (await back.next())["type"] == "call.ringing"
    assert (await back.next())["type"] == "resumed"


async def test_a_missed_call_becomes_one_callback_task_however_often_they_call(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("m-1", "+49 711 5550000", "10")
    await office.phone.hang_up("m-1")
    created = await anna.next_of("task.created")
    task = created["task"]
    assert task["kind"] == "callback" and task["phone"] == "+497115550000" and task["missed_calls"] == 1
    assert task["assignee_agent_id"] is not None
    await office.phone.ring("m-2", "0711 5550000", "10")
    await office.phone.hang_up("m-2")
    updated = await anna.next_of("task.updated")
    assert updated["task"]["id"] == task["id"] and updated["task"]["missed_calls"] == 2
    open_tasks = await office.get("/api/tasks?status=open")
    assert [t["id"] for t in open_tasks["items"] if t["phone"] == "+497115550000"] == [task["id"]]
    missed = await office.get("/api/calls?state=missed")
    assert {c["provider_call_id"] for c in missed["items"]} == {"m-1", "m-2"}


async def test_a_withheld_caller_pops_as_withheld_and_leaves_no_task(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("w-1", "anonymous", "10")
    pop = await anna.next_of("call.ringing")
    assert pop["caller"]["withheld"] is True and pop["matches"] == []
    await office.phone.hang_up("w-1")
    ended = await anna.next_of("call.ended")
    assert ended["call"]["state"] == "missed" and ended["call"]["task_id"] is None


async def test_a_note_from_the_pop_lands_in_every_matched_file(office: Office) -> None:
    anna, ben = await office.agent("anna"), await office.agent("ben")
    await office.phone.ring("n-1", "089 2345678", "10", "11")
    pop = await anna.next_of("call.ringing")
    await anna.send({"type": "note", "call_id": pop["call"]["id"], "text": "Bestellt 20 Brezen für Freitag",
                     "ref": "n1"})
    saved = await anna.next_of("note.saved")
    assert saved["ref"] == "n1" and saved["entry"]["kind"] == "note"
    assert (await ben.next_of("history.added"))["entry"]["id"] == saved["entry"]["id"]
    for match in pop["matches"]:
        kind = "contacts" if match["kind"] == "contact" else "organizations"
        history = await office.get(f"/api/{kind}/{match['id']}/history")
        assert history["items"][0]["body"] == "Bestellt 20 Brezen für Freitag"
        assert history["items"][0]["call_id"] == pop["call"]["id"]
    trail = (await office.get(f"/api/audit?subject=call:{pop['call']['id']}"))["items"]
    assert [(e["action"], e["via"], e["actor"], e["client"]) for e in trail] == [
        ("change", "ws", f"agent:{saved['entry']['agent']['id']}", "127.0.0.1")]


async def test_a_note_sent_again_under_its_ref_is_stored_once(office: Office) -> None:
    """A client whose confirmation was lost with the connection sends the note again, from a new
    connection; the second `note.saved` carries the entry saved the first time."""
    anna = await office.agent("anna")
    await office.phone.ring("n-3", "089 2345678", "10")
    call_id = (await anna.next_of("call.ringing"))["call"]["id"]
    note = {"type": "note", "call_id": call_id, "text": "Angebot bis Montag", "ref": "tab1-note-7"}
    await anna.send(note)
    first = await anna.next_of("note.saved")
    again = await office.agent("anna")
    await again.send(note)
    second = await again.next_of("note.saved")
    assert second["ref"] == "tab1-note-7" and second["entry"] == first["entry"]
    await again.send({**note, "ref": "tab1-note-8"})
    assert (await again.next_of("note.saved"))["entry"]["id"] != first["entry"]["id"]  # a new ref: a new note
    await again.send({**note, "ref": 8})
    assert (await again.next_of("error"))["details"] == {"field": "ref"}
    history = await office.get(f"/api/contacts/{first['entry']['contact_ids'][0]}/history")
    assert [e["body"] for e in history["items"] if e["kind"] == "note"] == ["Angebot bis Montag"] * 2


async def test_a_note_over_rest_and_a_bad_note_over_the_socket(office: Office) -> None:
    anna = await office.agent("anna")
    await office.phone.ring("n-2", MUELLER_DIRECT, "10")
    call_id = (await anna.next_of("call.ringing"))["call"]["id"]
    async with office.http.post(f"{office.base}/api/calls/{call_id}/notes", json={"text": "Rückruf zugesagt"},
                                headers=office.headers("ben")) as response:
        assert response.status == 201
        assert (await response.json())["call_id"] == call_id
    await anna.send({"type": "note", "call_id": call_id, "text": "   "})
    error = await anna.next_of("error")
    assert error["code"] == "validation_failed"
    await anna.send({"type": "note", "call_id": 999999, "text": "x"})
    assert (await anna.next_of("error"))["code"] == "not_found"
    await anna.send({"type": "dance"})
    assert (await anna.next_of("error"))["details"] == {"field": "type"}


async def test_ping_pong(office: Office) -> None:
    anna = await office.agent("anna")
    await anna.send({"type": "ping", "ref": 7})
    pong = await anna.next()
    assert pong["type"] == "pong" and pong["ref"] == 7


async def test_pops_keep_coming_under_concurrent_calls(office: Office) -> None:
    anna = await office.agent("anna")
    await asyncio.gather(*(office.phone.ring(f"p-{i}", MUELLER_DIRECT, "10") for i in range(20)))
    pops = [await anna.next_of("call.ringing") for _ in range(20)]
    seqs = [pop["seq"] for pop in pops]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20
    assert {pop["call"]["provider_call_id"] for pop in pops} == {f"p-{i}" for i in range(20)}


async def test_a_ring_group_that_widens_pops_up_on_the_newly_rung_agent_only(office: Office) -> None:
    anna, ben = await office.agent("anna"), await office.agent("ben")
    await office.phone.ring("g-1", MUELLER_DIRECT, "10")
    await anna.next_of("call.ringing")
    await office.phone.ring("g-1", MUELLER_DIRECT, "11")  # the PBX forks the call to a second phone
    widened = await ben.next_of("call.ringing")
    assert widened["call"]["provider_call_id"] == "g-1" and widened["matches"][0]["name"] == "Jürgen Müller"
    assert await anna.nothing_within()
    await office.phone.answer("g-1", "11")
    assert (await anna.next_of("call.answered"))["by"]["name"] == "ben"


async def test_an_outbound_call_pops_the_customer_for_the_dialling_agent_and_files_it(office: Office) -> None:
    anna = await office.agent("anna")
    response = await office.phone.post({"event": "ringing", "call_id": "o-1", "direction": "out", "from": "10",
                                        "to": "0171 2345678", "targets": ["10"]})
    assert response.status == 200
    pop = await anna.next_of("call.ringing")
    assert pop["call"]["direction"] == "out" and pop["matches"][0]["name"] == "Jürgen Müller"
    await office.phone.post({"event": "ended", "call_id": "o-1", "direction": "out", "outcome": "busy"})
    ended = await anna.next_of("call.ended")
    assert ended["call"]["state"] == "busy" and ended["call"]["task_id"] is None
    history = await office.get(f"/api/contacts/{pop['matches'][0]['id']}/history")
    assert history["items"][0]["title"] == "Outgoing call, busy"


async def test_a_note_written_in_the_rest_api_reaches_the_agents_other_sessions(office: Office) -> None:
    anna = await office.agent("anna")
    contact = (await office.get("/api/contacts?phone=0171%202345678"))["matches"][0]
    async with office.http.post(f"{office.base}/api/contacts/{contact['id']}/notes",
                                json={"text": "Angebot angenommen\nDetails folgen"},
                                headers=office.headers("anna")) as response:
        assert response.status == 201
        entry = await response.json()
    assert entry["title"] == "Angebot angenommen" and entry["organization_ids"] == [contact["organization_id"]]
    assert (await anna.next_of("history.added"))["entry"] == entry
    timeline = await office.get(f"/api/organizations/{contact['organization_id']}/history")
    assert timeline["items"][0]["id"] == entry["id"]
