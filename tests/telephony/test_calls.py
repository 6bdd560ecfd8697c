"""The call state machine: the same events give the same call, whatever order and however often they come."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from commhub.telephony.calls import CallFacts, apply
from commhub.telephony.contract import CallEvent, Outcome, Phase

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def event(phase: Phase, outcome: Outcome | None = None, answered_by: str | None = None) -> CallEvent:
    return CallEvent(call_id="c1", phase=phase, direction="in", caller="+49301234567", callee="+4930555",
                     answered_by=answered_by, outcome=outcome)


RINGING = (event(Phase.RINGING), T0)
ANSWERED = (event(Phase.ANSWERED, answered_by="10"), T0 + timedelta(seconds=8))
HANGUP = (event(Phase.ENDED), T0 + timedelta(seconds=68))


def fold(steps: list[tuple[CallEvent, datetime]]) -> CallFacts:
    facts = None
    for item, at in steps:
        facts = apply(facts, item, at).after
    assert facts is not None
    return facts


def test_ringing_answered_hung_up_is_completed_with_talk_time() -> None:
    facts = fold([RINGING, ANSWERED, HANGUP])
    assert facts.state == "completed"
    assert facts.talk_seconds() == 60
    assert facts.answered_by == "10"


def test_hung_up_while_ringing_is_missed() -> None:
    assert fold([RINGING, HANGUP]).state == "missed"


@pytest.mark.parametrize("order", list(itertools.permutations([RINGING, ANSWERED, HANGUP])))
def test_any_order_converges_to_the_same_call(order: tuple[tuple[CallEvent, datetime], ...]) -> None:
    facts = fold(list(order))
    assert (facts.state, facts.started_at, facts.answered_at, facts.ended_at, facts.talk_seconds()) == (
        "completed", T0, T0 + timedelta(seconds=8), T0 + timedelta(seconds=68), 60)


def test_duplicates_change_nothing() -> None:
    once = fold([RINGING, ANSWERED, HANGUP])
    assert fold([RINGING, RINGING, ANSWERED, ANSWERED, HANGUP, HANGUP]) == once
    assert not apply(once, HANGUP[0], HANGUP[1]).changed


def test_late_answer_corrects_a_missed_call() -> None:
    missed = fold([RINGING, HANGUP])
    change = apply(missed, *ANSWERED)
    assert change.verdict_changed and change.after.state == "completed"
    assert not change.ended_now and not change.answered_now  # the call is over: no "answered" pop


@pytest.mark.parametrize(("outcome", "state"), [(Outcome.BUSY, "busy"), (Outcome.REJECTED, "rejected"),
                                                (Outcome.FAILED, "failed"), (Outcome.MISSED, "missed"),
                                                (Outcome.COMPLETED, "completed")])
def test_the_vendors_verdict_decides_an_unanswered_call(outcome: Outcome, state: str) -> None:
    assert fold([RINGING, (event(Phase.ENDED, outcome), HANGUP[1])]).state == state


def test_a_seen_answer_beats_a_vague_missed_verdict_but_not_busy() -> None:
    assert fold([RINGING, ANSWERED, (event(Phase.ENDED, Outcome.MISSED), HANGUP[1])]).state == "completed"
    assert fold([RINGING, ANSWERED, (event(Phase.ENDED, Outcome.BUSY), HANGUP[1])]).state == "busy"


def test_a_hangup_for_an_unknown_call_creates_it_ended() -> None:
    change = apply(None, *HANGUP)
    assert change.created and change.ended_now and change.after.state == "missed"


def test_the_vendors_duration_wins_over_clock_difference() -> None:
    ended = CallEvent(call_id="c1", phase=Phase.ENDED, direction="in", caller=None, callee=None,
                      outcome=Outcome.COMPLETED, duration=42)
    assert fold([RINGING, ANSWERED, (ended, HANGUP[1])]).talk_seconds() == 42
