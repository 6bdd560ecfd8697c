"""`match_caller`: the one function behind webhooks, `GET /api/contacts?phone=` and `contacts find`."""

from __future__ import annotations

from commhub.contacts.index import CallerIndex
from commhub.contacts.matching import CallerMatch, rank
from commhub.contacts.phone import describe, normalise


class CallerId:
    def __init__(self, index: CallerIndex, *, region: str = "DE", language: str = "de",
                 locate: bool = False) -> None:
        self.index = index
        self.region = region
        self.language = language
        self.locate = locate

    async def match(self, text: str | None) -> CallerMatch:
        number = normalise(text, self.region)
        match = CallerMatch(number=number)
        if number.e164 is not None:
            candidates = await self.index.exact(number.e164)
            if not candidates:
                candidates = await self.index.via_switchboard(number.e164)
            match.candidates = rank(candidates)
        match.facts = describe(number, language=self.language, locate=self.locate)
        return match
