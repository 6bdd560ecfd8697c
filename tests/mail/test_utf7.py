"""Folder names as IMAP servers spell them (modified UTF-7, RFC 3501 §5.1.3) and as users read them."""

from __future__ import annotations

import pytest

from commhub.mail.utf7 import decode, encode, quote


@pytest.mark.parametrize(("name", "wire"), [
    ("Entwürfe", "Entw&APw-rfe"),
    ("Gesendete Objekte", "Gesendete Objekte"),
    ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
    ("&", "&-"),
    ("Müller & Söhne", "M&APw-ller &- S&APY-hne"),
    ("台北", "&U,BTFw-"),
    ("INBOX/Rechnungen 2024", "INBOX/Rechnungen 2024"),
    ("", ""),
])
def test_known_names(name: str, wire: str) -> None:
    assert encode(name) == wire
    assert decode(wire) == name


@pytest.mark.parametrize("name", [
    "äöüß€", "&&&", "a&b&c", "~peter/mail/日本語/台北", "Emoji 📨 Post", "Tab\tund\nZeile", "&-", "Ä&Ö",
    "x" * 300, "ü" * 301,
])
def test_round_trip(name: str) -> None:
    wire = encode(name)
    assert wire.isascii() and all(" " <= char <= "~" for char in wire)
    assert decode(wire) == name


def test_adjacent_shifts_and_shifted_ascii_are_read() -> None:
    # Not what encode() writes, but unambiguous: servers in the wild send it.
    assert decode("&AOQ-&APY-") == "äö"
    assert decode("&AGE-bc") == "abc"


@pytest.mark.parametrize(("wire", "complaint"), [
    ("Entw&APw", "not closed by '-'"),
    ("&", "not closed by '-'"),
    ("&AP!-", "not modified base64"),
    ("&APw=-", "not modified base64"),
    ("&U/BTFw-", "not modified base64"),  # "/" is "," in the modified alphabet
    ("&A-", "impossible length"),
    ("&APx-", "whole UTF-16 characters"),  # leftover bits not zero
    ("&AP-", "whole UTF-16 characters"),
    ("&2D0-", "unpaired UTF-16 surrogate"),
    ("Entwürfe", "must be encoded"),
    ("a\x00b", "must be encoded"),
])
def test_malformed_names_are_refused_clearly(wire: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as raised:
        decode(wire)
    assert repr(wire) in str(raised.value)


def test_encode_refuses_a_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode("kaputt \udcfc")


@pytest.mark.parametrize(("wire", "argument"), [
    ("INBOX", "INBOX"),
    ("Entw&APw-rfe", "Entw&APw-rfe"),
    ("Archiv]2024", "Archiv]2024"),
    ("Gesendete Objekte", '"Gesendete Objekte"'),
    ("", '""'),
    ('Kunden "A-Z"', '"Kunden \\"A-Z\\""'),
    ("Laufwerk\\Ordner", '"Laufwerk\\\\Ordner"'),
    ("100%", '"100%"'),
    ("Projekt (alt)", '"Projekt (alt)"'),
])
def test_quote_gives_one_command_argument(wire: str, argument: str) -> None:
    assert quote(wire) == argument


@pytest.mark.parametrize("wire", ["Entwürfe", "Zeile\r\nA1 LOGOUT", "nul\x00"])
def test_quote_refuses_what_a_quoted_string_cannot_carry(wire: str) -> None:
    with pytest.raises(ValueError, match="encode"):
        quote(wire)


def test_quote_after_encode_for_a_typical_outlook_folder() -> None:
    assert quote(encode("Gelöschte Elemente")) == '"Gel&APY-schte Elemente"'
