"""The shape of a customer file as it comes from outside (an import file, the API, the demo set).

Readers (CSV, vCard) produce `ImportRow`s; the importer turns records into stored files.
Nothing here touches the database, so readers stay pure and testable on bytes alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PHONE_KINDS = ("work", "mobile", "home", "fax", "switchboard")


@dataclass(slots=True)
class PhoneRecord:
    raw: str
    kind: str = "work"  # one of PHONE_KINDS


@dataclass(slots=True)
class ContactRecord:
    """One person (optionally in a company) or, when only `company` is set, one company."""

    salutation: str = ""
    title: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    position: str = ""
    customer_class: str = ""  # "A", "B", "C" or "" when unknown
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""
    phones: list[PhoneRecord] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    company_domain: str = ""  # a company website/domain, if the source has one
    attributes: dict[str, str] = field(default_factory=dict)  # unknown columns, kept verbatim

    def is_company_only(self) -> bool:
        return not (self.first_name or self.last_name) and bool(self.company)

    def is_empty(self) -> bool:
        return not (self.first_name or self.last_name or self.company or self.phones or self.emails)


@dataclass(slots=True)
class ImportRow:
    """A record read from line `line` of the source file, or the reason it could not be read."""

    line: int
    record: ContactRecord | None = None
    error: str | None = None
