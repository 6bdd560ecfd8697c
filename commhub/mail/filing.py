"""Which files a message concerns: its addresses matched to contacts, its domains to organizations.

Pure rules, no database: the store looks the addresses and domains up and hands the rows in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr

from commhub.settings import Settings

# Addresses at these domains belong to people, not to the company that runs the mail service, so
# they never file a message to an organization by domain.
FREEMAIL_DOMAINS = frozenset({
    "aol.com", "arcor.de", "bluewin.ch", "email.de", "freenet.de", "gmail.com", "gmx.at", "gmx.ch", "gmx.de",
    "gmx.net", "googlemail.com", "hotmail.com", "hotmail.de", "icloud.com", "kabelmail.de", "live.com",
    "live.de", "mail.de", "mailbox.org", "me.com", "msn.com", "online.de", "outlook.com", "outlook.de",
    "posteo.de", "proton.me", "protonmail.com", "t-online.de", "vodafonemail.de", "web.de", "yahoo.com",
    "yahoo.de", "ymail.com",
})
# Roles whose addresses file a message (Sender is the list server or the secretary's tool).
FILING_ROLES = ("from", "reply_to", "to", "cc", "bcc")


@dataclass(frozen=True, slots=True)
class OwnAddresses:
    """The company's own addresses: never a customer, and their domains never a customer's."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, addresses: Iterable[str]) -> OwnAddresses:
        own = frozenset(a.strip().lower() for a in addresses if "@" in a)
        return cls(own, frozenset(domain_of(a) for a in own))


@dataclass(frozen=True, slots=True)
class Targets:
    contact_ids: tuple[int, ...]
    organization_ids: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.contact_ids or self.organization_ids)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def lookup_keys(addresses: Iterable[str], own: OwnAddresses) -> tuple[set[str], set[str]]:
    """The addresses to look up among contacts, and the domains to look up among organizations."""
    wanted = {a for a in addresses if a and a not in own.addresses}
    domains = {domain_of(a) for a in wanted} - FREEMAIL_DOMAINS - own.domains
    return wanted, domains


def targets(addresses: Iterable[str], own: OwnAddresses,
            by_address: Mapping[str, list[tuple[int | None, int | None]]],
            by_domain: Mapping[str, list[int]]) -> Targets:
    """Contacts (and organizations) whose addresses the message names; organizations at its domains."""
    wanted, domains = lookup_keys(addresses, own)
    contacts: dict[int, None] = {}
    organizations: dict[int, None] = {}
    for address in sorted(wanted):
        for contact_id, organization_id in by_address.get(address, ()):
            if contact_id is not None:
                contacts[contact_id] = None
            elif organization_id is not None:
                organizations[organization_id] = None
    for domain in sorted(domains):
        for organization_id in by_domain.get(domain, ()):
            organizations[organization_id] = None
    return Targets(tuple(contacts), tuple(organizations))


def own_addresses(settings: Settings) -> OwnAddresses:
    """The mailboxes' own addresses and the SMTP sender."""
    found = [a for mailbox in settings.mailboxes for a in mailbox.own_addresses]
    if settings.smtp.from_:
        found.append(parseaddr(settings.smtp.from_)[1])
    return OwnAddresses.of(found)
