"""`commhub contacts duplicates`: pairs of contact files that are probably the same person.

Evidence, strongest first: the same email address; the same personal number (not a switchboard
or fax) with a similar name; names that sound alike (Kölner Phonetik) and read alike, in the same
company or without one. A shared office line alone is reported as a weak hint, never merged.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from itertools import combinations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from commhub.contacts.names import display_name, fold
from commhub.contacts.phonetics import cologne_code
from commhub.store.models import Contact, EmailAddressRow, Organization, PhoneNumberRow

SIMILAR_NAME = 0.85
# Comparing every pair inside a huge block (thousands of "Müller, M.") says nothing useful and costs O(n²).
MAX_BLOCK = 400


@dataclass(slots=True)
class Person:
    id: int
    first: str
    last: str
    organization: str | None

    @property
    def name(self) -> str:
        return display_name(self.first, self.last) or "(no name)"


@dataclass(slots=True)
class DuplicatePair:
    first: Person
    second: Person
    reasons: list[str] = field(default_factory=list)
    score: int = 0

    def add(self, reason: str, score: int) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
            self.score += score


async def find_duplicates(session: AsyncSession) -> list[DuplicatePair]:
    people = await _people(session)
    pairs: dict[tuple[int, int], DuplicatePair] = {}

    def pair(a: int, b: int) -> DuplicatePair:
        low, high = sorted((a, b))
        return pairs.setdefault((low, high), DuplicatePair(people[low], people[high]))

    for address, owners in await _shared(session, EmailAddressRow.address, EmailAddressRow.contact_id):
        for a, b in combinations(owners, 2):
            pair(a, b).add(f"same email {address}", 3)
    personal = PhoneNumberRow.kind.not_in(("switchboard", "fax"))
    for number, owners in await _shared(session, PhoneNumberRow.e164, PhoneNumberRow.contact_id, personal):
        for a, b in combinations(owners, 2):
            similar = _similar(people[a], people[b])
            pair(a, b).add(f"same number {number}" + ("" if similar else " (a shared line?)"), 3 if similar else 1)
    for a, b in _sound_alike(people):
        pair(a, b).add("similar names" + (" in the same company" if people[a].organization else ""), 2)
    return sorted(pairs.values(), key=lambda p: (-p.score, p.first.id, p.second.id))


async def _people(session: AsyncSession) -> dict[int, Person]:
    rows = await session.execute(select(Contact.id, Contact.first_name, Contact.last_name, Organization.name)
                                 .outerjoin(Organization, Organization.id == Contact.organization_id))
    return {row[0]: Person(row[0], row[1] or "", row[2] or "", row[3]) for row in rows}


async def _shared(session: AsyncSession, key: object, owner: object, *where: object) -> list[tuple[str, list[int]]]:
    shared = (select(key).where(owner.isnot(None), key.isnot(None), *where)  # type: ignore[attr-defined]
              .group_by(key).having(func.count(func.distinct(owner)) > 1))
    rows = await session.execute(select(key, owner).where(key.in_(shared), owner.isnot(None), *where)  # type: ignore[attr-defined]
                                 .distinct())
    grouped: dict[str, list[int]] = defaultdict(list)
    for value, owner_id in rows:
        grouped[value].append(owner_id)
    return sorted((value, sorted(ids)) for value, ids in grouped.items())


def _sound_alike(people: dict[int, Person]) -> list[tuple[int, int]]:
    blocks: dict[tuple[str, str, str | None], list[Person]] = defaultdict(list)
    for person in people.values():
        if person.last:
            blocks[(cologne_code(person.last), person.first[:1].casefold(), person.organization)].append(person)
    found = []
    for block in blocks.values():
        if 1 < len(block) <= MAX_BLOCK:
            found += [(a.id, b.id) for a, b in combinations(block, 2) if _similar(a, b)]
    return found


def _similar(a: Person, b: Person) -> bool:
    if not (a.last and b.last):
        return False
    return SequenceMatcher(None, fold(a.name), fold(b.name)).ratio() >= SIMILAR_NAME or (
        cologne_code(a.last) == cologne_code(b.last) and _first_names_agree(a.first, b.first))


def _first_names_agree(a: str, b: str) -> bool:
    a, b = fold(a).rstrip("."), fold(b).rstrip(".")
    if not a or not b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return SequenceMatcher(None, a, b).ratio() >= SIMILAR_NAME
