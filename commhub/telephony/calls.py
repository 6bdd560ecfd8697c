"""The call state machine, pure: (what we knew, a new event) -> what we know now, and what changed.

    ringing ──answer──> answered ──hangup──> completed
       └──hangup──> missed | rejected | busy | failed | forwarded   (the vendor's verdict, else "missed")

Phone systems deliver twice and out of order (CTI-NOTES: duplicate newCall, an answer after its
hangup, a hangup for a call never announced). So the state is not stepped but *derived* from the
facts gathered so far: when it was answered, when it ended, what the vendor said. Whatever order
the same events arrive in, the result is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from commhub.telephony.contract import CallEvent, Outcome, Phase

FINAL_STATES = frozenset(outcome.value for outcome in Outcome)
STATES = ("ringing", "answered", *FINAL_STATES)


@dataclass(frozen=True)
class CallFacts:
    direction: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    answered_by: str | None = None
    vendor_outcome: Outcome | None = None
    duration: int | None = None

    @property
    def state(self) -> str:
        if self.ended_at is None:
            return "answered" if self.answered_at is not None else "ringing"
        return self.outcome().value

    def outcome(self) -> Outcome:
        """How the call ended. An answer seen overrides a vague verdict; a busy or rejected one stands."""
        vendor = self.vendor_outcome
        if vendor in (Outcome.BUSY, Outcome.REJECTED, Outcome.FAILED, Outcome.FORWARDED):
            return vendor
        if vendor is Outcome.COMPLETED or self.answered_at is not None:
            return Outcome.COMPLETED
        return Outcome.MISSED

    def talk_seconds(self) -> int | None:
        if self.duration is not None:
            return self.duration
        if self.answered_at is not None and self.ended_at is not None:
            return max(0, round((self.ended_at - self.answered_at).total_seconds()))
        return None


@dataclass(frozen=True)
class Change:
    """What an event changed; the caller turns these into pushes, history and tasks."""

    before: CallFacts | None
    after: CallFacts

    @property
    def created(self) -> bool:
        return self.before is None

    @property
    def answered_now(self) -> bool:
        return self.after.answered_at is not None and (self.before is None or self.before.answered_at is None) \
            and self.after.ended_at is None

    @property
    def ended_now(self) -> bool:
        return self.after.ended_at is not None and (self.before is None or self.before.ended_at is None)

    @property
    def verdict_changed(self) -> bool:
        """An ended call whose final state moved (a late answer turns "missed" into "completed")."""
        return (self.before is not None and self.before.ended_at is not None
                and self.before.state != self.after.state)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def apply(facts: CallFacts | None, event: CallEvent, at: datetime) -> Change:
    """Fold one event into the facts of its call. `at` is when the event happened (or arrived)."""
    current = facts or CallFacts(direction=event.direction, started_at=at)
    if at < current.started_at:
        current = replace(current, started_at=at)
    if event.phase is Phase.ANSWERED:
        current = _answered(current, event, at)
    elif event.phase is Phase.ENDED:
        current = _ended(current, event, at)
    return Change(before=facts, after=current)


def _answered(facts: CallFacts, event: CallEvent, at: datetime) -> CallFacts:
    if facts.answered_at is not None and facts.answered_at <= at:
        return facts if facts.answered_by or not event.answered_by else replace(facts, answered_by=event.answered_by)
    return replace(facts, answered_at=at, answered_by=event.answered_by or facts.answered_by)


def _ended(facts: CallFacts, event: CallEvent, at: datetime) -> CallFacts:
    if facts.ended_at is not None:
        # A redelivered or second hangup (several legs): keep the first, learn what it lacked.
        return replace(facts, vendor_outcome=facts.vendor_outcome or event.outcome,
                       duration=facts.duration if facts.duration is not None else event.duration)
    answered_by = facts.answered_by or (event.answered_by if event.outcome is Outcome.COMPLETED else None)
    return replace(facts, ended_at=max(at, facts.started_at), vendor_outcome=event.outcome,
                   duration=event.duration, answered_by=answered_by)
