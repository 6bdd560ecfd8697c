"""Request bodies of the REST API, validated by pydantic; their JSON Schemas feed the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from commhub.contacts.records import ContactRecord, PhoneRecord

Text100 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
PhoneKind = Literal["work", "mobile", "home", "fax", "switchboard"]
AttributeValue = str | int | float | bool | None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """PostgreSQL text (and JSONB) cannot hold NUL: refused here, by field, not by the database (500)."""
        if _holds_nul(value):
            raise ValueError("text must not contain NUL characters")
        return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class PhoneIn(Body):
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    kind: PhoneKind = "work"


class FileFields(Body):
    customer_class: Literal["A", "B", "C"] | None = Field(None, alias="class")
    street: Text200 | None = None
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    city: Text100 | None = None
    country: Text100 | None = None
    phones: Annotated[list[PhoneIn], Field(max_length=50)] | None = None
    emails: Annotated[list[Annotated[str, StringConstraints(max_length=320)]], Field(max_length=50)] | None = None
    attributes: Annotated[dict[Annotated[str, StringConstraints(max_length=100)], AttributeValue],
                          Field(max_length=200)] | None = None


class ContactIn(FileFields):
    salutation: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    first_name: Text100 | None = None
    last_name: Text100 | None = None
    position: Text100 | None = None
    organization_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    company: Text200 | None = Field(None, description="company name; found or created when organization_id is not given")

    def to_record(self) -> ContactRecord:
        return ContactRecord(
            salutation=self.salutation or "", title=self.title or "", first_name=self.first_name or "",
            last_name=self.last_name or "", company=self.company or "", position=self.position or "",
            customer_class=self.customer_class or "", street=self.street or "", postal_code=self.postal_code or "",
            city=self.city or "", country=self.country or "",
            phones=[PhoneRecord(raw=p.number, kind=p.kind) for p in self.phones or []],
            emails=list(self.emails or []),
            attributes={k: v for k, v in (self.attributes or {}).items() if v is not None},
        )


class OrganizationIn(FileFields):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    domain: Annotated[str, StringConstraints(strip_whitespace=True, max_length=253)] | None = None

    def to_record(self) -> ContactRecord:
        return ContactRecord(
            company=self.name, company_domain=self.domain or "", customer_class=self.customer_class or "",
            street=self.street or "", postal_code=self.postal_code or "", city=self.city or "",
            country=self.country or "", phones=[PhoneRecord(raw=p.number, kind=p.kind) for p in self.phones or []],
            emails=list(self.emails or []),
            attributes={k: v for k, v in (self.attributes or {}).items() if v is not None},
        )


class ContactPatch(ContactIn):
    """Only the fields sent change; `phones`/`emails`, when sent, replace the stored lists."""


class NoteIn(Body):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]


class AgentIn(Body):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    extensions: Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                                max_length=64)]], Field(max_length=20)] = []
    role: Literal["agent", "admin"] = "agent"
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    language: Literal["de", "en"] = "de"


class SessionIn(Body):
    """A console sign-in: the agent's token, pasted, so surrounding whitespace is forgiven."""

    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
