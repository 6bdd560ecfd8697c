"""Raw mail in, what the customer history shows out: headers, text, attachments, flags, and no crash.

Messages are written here as text and sent through `mail()`, which gives them the CRLF line endings an
IMAP server delivers and the charset under test; byte-level oddities are spelled out as bytes.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from support.email_corpus import corpus_files, require_corpus

from commhub.mail.parse import (
    Address,
    ParsedMail,
    UnparsableMail,
    clean_text,
    message_key,
    parse_headers,
    parse_message,
)


def mail(text: str, charset: str = "utf-8") -> bytes:
    """A message as an IMAP server delivers it: CRLF line endings, bytes in the given charset."""
    return textwrap.dedent(text).lstrip("\n").replace("\n", "\r\n").encode(charset)


PLAIN = mail("""
    From: Erika Muster <erika.muster@muster-gmbh.de>
    To: vertrieb@example.de
    Subject: Angebot
    Date: Tue, 12 Mar 2024 10:15:00 +0100
    Message-ID: <angebot-1@muster-gmbh.de>

    Guten Tag,
    bitte um ein Angebot.
    """)


# --- headers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", [
    "=?UTF-8?Q?Angebot_f=C3=BCr_Gro=C3=9Fk=C3=BCchen?=",
    "=?utf-8?b?QW5nZWJvdCBmw7xyIEdyb8Ofa8O8Y2hlbg==?=",
    "=?UTF-8?B?QW5nZWJvdCBmw7xyIEdyb8Ofa8O8Y2hlbg?=",  # padding left out, as some mailers do
    "=?iso-8859-1?B?QW5nZWJvdCBm/HIgR3Jv32v8Y2hlbg==?=",
    "=?ISO-8859-1?Q?Angebot_f=FCr?= =?ISO-8859-1?Q?_Gro=DFk=FCchen?=",
    "=?utf-8*de?q?Angebot_f=C3=BCr_Gro=C3=9Fk=C3=BCchen?=",  # RFC 2231 language tag
])
def test_rfc2047_subject(subject: str) -> None:
    raw = PLAIN.replace(b"Subject: Angebot", f"Subject: {subject}".encode())
    assert parse_message(raw).subject == "Angebot für Großküchen"


def test_encoded_words_joined_across_a_split_character_and_folding() -> None:
    # Outlook splits long subjects mid-character: "ü" is C3 BC, cut between two words and a fold.
    raw = PLAIN.replace(b"Subject: Angebot",
                        b"Subject: Re: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4gw7w=?=\r\n =?UTF-8?Q?ber_M=C3?=\r\n\t"
                        b"=?UTF-8?Q?=BCller?= (Vertrieb)")
    assert parse_message(raw).subject == "Re: Grüße aus Köln über Müller (Vertrieb)"


def test_encoded_word_with_an_unknown_charset_falls_back_to_utf8_then_cp1252() -> None:
    raw = PLAIN.replace(b"Subject: Angebot", b"Subject: =?x-unbekannt?Q?M=C3=BCller?= =?utf8x?Q?M=FCller?=")
    parsed = parse_message(raw)
    assert parsed.subject == "MüllerMüller"
    assert any("x-unbekannt" in problem for problem in parsed.problems)


def test_raw_8bit_bytes_in_headers_are_read_as_utf8_else_cp1252() -> None:
    raw = (b"From: J\xc3\xbcrgen Wei\xc3\x9f <j.weiss@example.de>\r\n"  # UTF-8
           b"To: Bj\xf6rn M\xfcller <bjoern@example.de>\r\n"  # latin-1, as old mailers send it
           b"Cc: \xff\xfe\x00garbage, ok@example.de\r\n"  # binary in Cc
           b"Subject: Gr\xc3\xbc\xc3\x9fe \xe2\x80\x93 Rechnung \x80 100\r\n\r\nText\r\n")
    parsed = parse_message(raw)
    assert parsed.from_ == [Address("Jürgen Weiß", "j.weiss@example.de")]
    assert parsed.to == [Address("Björn Müller", "bjoern@example.de")]
    assert [a.address for a in parsed.cc] == ["ok@example.de"]
    # UTF-8 with one cp1252 byte: each byte that is not UTF-8 is read as cp1252, the rest stays UTF-8.
    assert parsed.subject == "Grüße – Rechnung € 100"


def test_nul_and_control_characters_never_reach_the_database() -> None:
    raw = PLAIN.replace(b"Subject: Angebot", b"Subject: Angebot\x00 Nr.\x07 12\x1b").replace(
        b"bitte um", b"bitte\x00 um")
    parsed = parse_message(raw)
    assert parsed.subject == "Angebot Nr. 12"
    assert "\x00" not in parsed.text and "bitte um" in parsed.text


def test_folded_headers_are_unfolded() -> None:
    raw = PLAIN.replace(b"Subject: Angebot", b"Subject: Ihre Anfrage\r\n\tvom 12. M\xc3\xa4rz\r\n zum Wartungsvertrag")
    assert parse_message(raw).subject == "Ihre Anfrage vom 12. März zum Wartungsvertrag"


def test_addresses_are_decoded_normalised_and_deduplicated() -> None:
    raw = mail("""
        From: =?UTF-8?Q?M=C3=BCller=2C_Hans?= <H.Mueller@Kunde-GmbH.DE>
        To: "Schmidt, Anna" <anna.schmidt@example.de>, Vertrieb <VERTRIEB@example.de>
        To: vertrieb@example.de, undisclosed-recipients:;, kein-at-zeichen
        Cc: "Erika (Einkauf)" <erika@example.de> (Kommentar), <  bert@example.de >
        Subject: x

        x
        """)
    parsed = parse_message(raw)
    assert parsed.from_ == [Address("Müller, Hans", "h.mueller@kunde-gmbh.de")]
    assert parsed.to == [Address("Schmidt, Anna", "anna.schmidt@example.de"),
                         Address("Vertrieb", "vertrieb@example.de")]
    assert [a.address for a in parsed.cc] == ["erika@example.de", "bert@example.de"]
    assert parsed.cc[0].name == "Erika (Einkauf)"
    assert parsed.sender == parsed.reply_to == parsed.bcc == []


def test_message_id_is_normalised() -> None:
    folded = PLAIN.replace(b"Message-ID: <angebot-1@muster-gmbh.de>", b"Message-ID:\r\n  < angebot-1\r\n @muster-gmbh.de >")
    bare = PLAIN.replace(b"<angebot-1@muster-gmbh.de>", b"angebot-1@muster-gmbh.de")
    empty = PLAIN.replace(b"<angebot-1@muster-gmbh.de>", b"<>")
    assert parse_message(folded).message_id == "<angebot-1@muster-gmbh.de>"
    assert parse_message(bare).message_id == "<angebot-1@muster-gmbh.de>"
    assert parse_message(empty).message_id is None


def test_message_key_is_the_message_id() -> None:
    parsed = parse_message(PLAIN)
    assert message_key(parsed, PLAIN) == "<angebot-1@muster-gmbh.de>"


def test_without_message_id_the_key_is_a_stable_hash_of_the_raw_bytes() -> None:
    raw = PLAIN.replace(b"Message-ID: <angebot-1@muster-gmbh.de>\r\n", b"")
    key = message_key(parse_message(raw), raw)
    assert key == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert message_key(parse_message(raw), raw) == key  # the same mail fetched again: the same key
    assert message_key(None, raw) == key  # also when the mail could not be parsed at all
    other = raw.replace(b"Angebot", b"Rechnung")
    assert message_key(parse_message(other), other) != key


def test_in_reply_to_and_references() -> None:
    raw = PLAIN.replace(b"Message-ID", b"In-Reply-To: <b@x.de> (Hans Meier's message of Monday)\r\n"
                                       b"References: <a@x.de>\r\n <b@x.de>\r\n\t<a@x.de>\r\n"
                                       b"References: <c@x.de>\r\nMessage-ID")
    parsed = parse_message(raw)
    assert parsed.in_reply_to == "<b@x.de>"
    assert parsed.references == ["<a@x.de>", "<b@x.de>", "<c@x.de>"]
    assert (parse_message(PLAIN).in_reply_to, parse_message(PLAIN).references) == (None, [])


@pytest.mark.parametrize(("date", "expected"), [
    ("Tue, 12 Mar 2024 10:15:00 +0100", datetime(2024, 3, 12, 9, 15, tzinfo=UTC)),
    ("12 Mar 2024 10:15:00 -0000", datetime(2024, 3, 12, 10, 15, tzinfo=UTC)),  # no zone: taken as UTC
    ("Tue, 12 Mar 2024 10:15:00", datetime(2024, 3, 12, 10, 15, tzinfo=UTC)),
    ("Fri, 1 Jan 2100 00:00:00 +0000", datetime(2100, 1, 1, tzinfo=UTC)),  # the caller decides about it
    ("gestern Nachmittag", None),
    ("Tue, 31 Feb 2024 10:15:00 +0100", None),
    ("", None),
])
def test_sent_at_is_utc_or_none(date: str, expected: datetime | None) -> None:
    raw = PLAIN.replace(b"Tue, 12 Mar 2024 10:15:00 +0100", date.encode())
    assert parse_message(raw).sent_at == expected


def test_missing_date_gives_none() -> None:
    raw = PLAIN.replace(b"Date: Tue, 12 Mar 2024 10:15:00 +0100\r\n", b"")
    assert parse_message(raw).sent_at is None


# --- bodies ----------------------------------------------------------------------------------------

def text_mail(body: str, content_type: str, charset: str, encoding: str = "8bit") -> bytes:
    """A one-part message; `body` as is (not dedented), in `charset`."""
    header = mail(f"""
        From: buchhaltung@example.de
        Subject: Rechnung
        MIME-Version: 1.0
        Content-Type: {content_type}
        Content-Transfer-Encoding: {encoding}

        """)
    return header + body.replace("\r\n", "\n").replace("\n", "\r\n").encode(charset) + b"\r\n"


@pytest.mark.parametrize(("declared", "encoding"), [
    ("text/plain; charset=ISO-8859-1", "latin-1"),
    ("text/plain; charset=iso-8859-15", "iso-8859-15"),
    ('text/plain; charset="windows-1252"', "cp1252"),
    ("text/plain; charset=utf-8", "utf-8"),
])
def test_bodies_in_the_usual_charsets(declared: str, encoding: str) -> None:
    body = "Sehr geehrte Frau Müller, Ihre Rechnung über 100 Euro für Größe XL."
    if encoding != "latin-1":
        body = body.replace("Euro", "€")
    parsed = parse_message(text_mail(body, declared, encoding))
    assert parsed.text.strip() == body
    assert parsed.problems == []


def test_latin1_declared_but_cp1252_sent_shows_the_euro_sign() -> None:
    parsed = parse_message(text_mail("Betrag: 100 € „netto“ – fällig", "text/plain; charset=iso-8859-1", "cp1252"))
    assert parsed.text.strip() == "Betrag: 100 € „netto“ – fällig"


@pytest.mark.parametrize("declared", ["utf8x", "unknown-8bit", '"x-user-defined"'])
def test_broken_charset_declaration_falls_back_to_utf8(declared: str) -> None:
    parsed = parse_message(text_mail("Grüße aus Köln", f"text/plain; charset={declared}", "utf-8"))
    assert parsed.text.strip() == "Grüße aus Köln"
    assert any("unknown charset" in problem for problem in parsed.problems)


def test_broken_charset_declaration_with_cp1252_bytes_falls_back_to_cp1252() -> None:
    parsed = parse_message(text_mail("Grüße aus Köln: 5 €", "text/plain; charset=unknown-8bit", "cp1252"))
    assert parsed.text.strip() == "Grüße aus Köln: 5 €"


def test_utf8_declared_but_cp1252_sent_is_still_readable() -> None:
    parsed = parse_message(text_mail("Grüße", "text/plain; charset=utf-8", "cp1252"))
    assert parsed.text.strip() == "Grüße"
    assert "text is not valid utf-8" in parsed.problems


def test_a_cp1252_signature_under_a_utf8_reply_reads_right() -> None:
    header = text_mail("", "text/plain; charset=utf-8", "ascii").split(b"\r\n\r\n")[0]
    raw = header + "\r\n\r\nGrüße aus Köln\r\n-- \r\n".encode() + b"M\xfcller GmbH \x96 Gesch\xe4ftsf\xfchrung\r\n"
    parsed = parse_message(raw)
    assert parsed.text == "Grüße aus Köln\n-- \nMüller GmbH – Geschäftsführung\n"
    assert "text is not valid utf-8" in parsed.problems


def test_missing_charset_with_8bit_text() -> None:
    assert parse_message(text_mail("Grüße", "text/plain", "utf-8")).text.strip() == "Grüße"
    assert parse_message(text_mail("Grüße", "text/plain", "cp1252")).text.strip() == "Grüße"


def test_quoted_printable_and_base64_bodies() -> None:
    qp = text_mail("Gr=C3=BC=C3=9Fe aus K=C3=B6ln, eine sehr lange Zeile die umgebrochen =\n wird.",
                   "text/plain; charset=utf-8", "ascii", "quoted-printable")
    b64 = text_mail(base64.b64encode("Grüße aus Köln".encode()).decode(), "text/plain; charset=utf-8",
                    "ascii", "base64")
    assert parse_message(qp).text.strip() == "Grüße aus Köln, eine sehr lange Zeile die umgebrochen  wird."
    assert parse_message(b64).text == "Grüße aus Köln"


def test_text_line_endings_are_newlines() -> None:
    assert parse_message(PLAIN).text == "Guten Tag,\nbitte um ein Angebot.\n"


ALTERNATIVE = mail("""
    From: erika.muster@muster-gmbh.de
    Subject: Angebot
    MIME-Version: 1.0
    Content-Type: multipart/alternative; boundary="=_alt"

    --=_alt
    Content-Type: text/plain; charset=utf-8
    Content-Transfer-Encoding: quoted-printable

    Sehr geehrter Herr M=C3=BCller,
    anbei das Angebot.
    --=_alt
    Content-Type: text/html; charset=utf-8

    <html><body><p>Sehr geehrter Herr Müller,</p><p>anbei das <b>Angebot</b>.</p></body></html>
    --=_alt--
    """)


def test_multipart_alternative_gives_text_and_html() -> None:
    parsed = parse_message(ALTERNATIVE)
    assert parsed.text == "Sehr geehrter Herr Müller,\nanbei das Angebot."
    assert parsed.html == "<html><body><p>Sehr geehrter Herr Müller,</p><p>anbei das <b>Angebot</b>.</p></body></html>"
    assert parsed.attachments == [] and parsed.problems == []


def test_html_only_mail_gets_a_readable_text() -> None:
    html = ("<html><head><title>Newsletter März</title><style>p { color: red }</style>"
            "<script>alert('x')</script></head><body><p>Sehr geehrte&nbsp;Frau M&uuml;ller,</p>\r\n"
            "<p>unser Angebot:<br>Preis&nbsp;1.200&nbsp;&euro; &amp; 5&nbsp;% Rabatt</p>"
            "<table><tr><td>Artikel</td><td>Menge</td></tr></table><!-- verborgen --></body></html>")
    parsed = parse_message(text_mail(html, "text/html; charset=utf-8", "utf-8"))
    assert parsed.html is not None and "<script>" in parsed.html  # kept as found; sanitised when shown
    assert parsed.text == "Sehr geehrte Frau Müller,\n\nunser Angebot:\nPreis 1.200 € & 5 % Rabatt\n\nArtikel Menge"


def test_html_charset_from_meta_when_the_header_has_none() -> None:
    html = '<html><head><meta charset="windows-1252"></head><body>Grüße</body></html>'
    assert parse_message(text_mail(html, "text/html", "cp1252")).text == "Grüße"


def test_several_text_parts_in_mixed_are_joined() -> None:
    raw = mail("""
        From: a@example.de
        Content-Type: multipart/mixed; boundary=b

        --b
        Content-Type: text/plain; charset=utf-8

        Teil eins
        --b
        Content-Type: image/png
        Content-Disposition: inline
        Content-Transfer-Encoding: base64

        iVBORw0KGgo=
        --b
        Content-Type: text/plain; charset=iso-8859-1
        Content-Transfer-Encoding: quoted-printable

        Teil zwei f=FCr Sie
        --b
        Content-Type: text/plain; charset=utf-8
        Content-Disposition: attachment; filename=notiz.txt

        keine Nachricht, ein Anhang
        --b--
        """)
    parsed = parse_message(raw)
    assert parsed.text == "Teil eins\nTeil zwei für Sie"
    assert [(a.filename, a.content_type, a.inline) for a in parsed.attachments] == [
        ("", "image/png", True), ("notiz.txt", "text/plain", False)]
    assert parsed.attachments[1].data == b"keine Nachricht, ein Anhang"


# --- attachments -----------------------------------------------------------------------------------

def attachment_mail(disposition: bytes) -> bytes:
    return (b"From: a@example.de\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nAnbei.\r\n"
            b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: " + disposition + b"\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n")


@pytest.mark.parametrize("disposition", [
    b"attachment; filename*=UTF-8''Angebot%20M%C3%BCller.pdf",
    b"attachment;\r\n filename*0*=UTF-8''Angebot%20M%C3;\r\n filename*1*=%BCller.pdf",
    b"attachment; filename*0*=UTF-8''Angebot%20M%C3%BC; filename*1=\"ller.pdf\"",
    b"attachment; filename=\"=?UTF-8?Q?Angebot_M=C3=BCller.pdf?=\"",  # Outlook, Thunderbird
    b"attachment; filename=\"Angebot M\xc3\xbcller.pdf\"",  # raw UTF-8 bytes
    b"attachment; filename=\"Angebot M\xfcller.pdf\"",  # raw latin-1 bytes
    b"attachment; filename*=iso-8859-1'de'Angebot%20M%FCller.pdf",
])
def test_attachment_filenames(disposition: bytes) -> None:
    parsed = parse_message(attachment_mail(disposition))
    [pdf] = parsed.attachments
    assert (pdf.filename, pdf.content_type, pdf.data, pdf.inline) == (
        "Angebot Müller.pdf", "application/pdf", b"%PDF-1.4\n", False)
    assert parsed.text == "Anbei."


def test_filename_from_content_type_name_and_none_at_all() -> None:
    raw = attachment_mail(b"attachment").replace(b"application/pdf", b"application/pdf; name=\"Rechnung 42.pdf\"")
    assert parse_message(raw).attachments[0].filename == "Rechnung 42.pdf"
    assert parse_message(attachment_mail(b"attachment")).attachments[0].filename == ""


def test_conflicting_rfc2231_parameters_do_not_crash() -> None:
    # Both filename* and filename*0: the stdlib's parameter decoder raises TypeError on this.
    parsed = parse_message(attachment_mail(b"attachment; filename*=utf-8''a.pdf; filename*0=b.pdf"))
    assert parsed.attachments[0].data == b"%PDF-1.4\n"


def test_inline_image_in_multipart_related() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nlogo").decode()
    raw = mail(f"""
        From: a@example.de
        Content-Type: multipart/related; boundary=rel

        --rel
        Content-Type: text/html; charset=utf-8

        <p>Unser Logo: <img src="cid:logo.123@muster-gmbh.de"></p>
        --rel
        Content-Type: image/png; name=logo.png
        Content-Transfer-Encoding: base64
        Content-ID: <logo.123@muster-gmbh.de>

        {png}
        --rel--
        """)
    parsed = parse_message(raw)
    [logo] = parsed.attachments
    assert (logo.filename, logo.content_type, logo.content_id, logo.inline) == (
        "logo.png", "image/png", "logo.123@muster-gmbh.de", True)
    assert logo.data == b"\x89PNG\r\n\x1a\nlogo"
    assert parsed.text == "Unser Logo:"


def test_attached_mail_is_kept_whole() -> None:
    raw = mail("""
        From: chef@example.de
        Subject: Fwd: Reklamation
        Content-Type: multipart/mixed; boundary=b

        --b
        Content-Type: text/plain

        Bitte kümmern.
        --b
        Content-Type: message/rfc822

        From: Kunde <kunde@example.com>
        Subject: =?UTF-8?Q?Reklamation_Auftrag_4711_=E2=80=93_defekt?=
        Message-ID: <reklamation@example.com>

        Die Lieferung war defekt.
        --b--
        """)
    parsed = parse_message(raw)
    [attached] = parsed.attachments
    assert (attached.filename, attached.content_type) == ("Reklamation Auftrag 4711 – defekt.eml", "message/rfc822")
    inner = parse_message(attached.data)
    assert (inner.message_id, inner.from_[0].address, inner.text) == (
        "<reklamation@example.com>", "kunde@example.com", "Die Lieferung war defekt.")
    assert parsed.text == "Bitte kümmern."


def test_large_attachment_and_long_text_come_through_byte_exact() -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 1200  # 300 KB
    text = "\n".join(f"Position {n}: Wartung Telefonanlage, 1 Stück" for n in range(300)) + "\n-- \nErika Muster"
    encoded = base64.encodebytes(pdf).decode()
    raw = mail(f"""
        From: a@example.de
        Content-Type: multipart/mixed; boundary="----=_Part_0815"

        ------=_Part_0815
        Content-Type: text/plain; charset=utf-8

        {textwrap.indent(text, "        ").lstrip()}
        ------=_Part_0815
        Content-Type: application/pdf; name=Angebot.pdf
        Content-Transfer-Encoding: base64

        {textwrap.indent(encoded, "        ").lstrip()}
        ------=_Part_0815--
        """)
    parsed = parse_message(raw)
    assert parsed.text == text
    assert parsed.attachments[0].data == pdf
    assert parsed.problems == []


LETTER = "\n".join(["Sehr geehrte Frau Müller,", "", "- Position 1: Wartung", "- Position 2: Rufumleitung",
                    *(f"Zeile {n}: die Anlage läuft, boundary=\"abc\" steht nur im Text." for n in range(40)),
                    "--abcX ist keine Grenze, nur Text", "", "-- ", "Erika Muster"])
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 80


def big_mail(newline: str) -> bytes:
    """Large bodies, nested multiparts whose boundaries are prefixes of each other ("abc", "abcdef"),
    an attached mail with its own attachment, and a close boundary cut off by the end of the message."""
    pdf = base64.encodebytes(PDF).decode()
    html = "<html><body>" + "".join(f"<p>Absatz {n} &amp; mehr Text für die Vorschau.</p>\n" for n in range(40))
    text = "\n".join([
        "From: Erika Muster <erika@muster-gmbh.de>", "Subject: Wartung", "Content-Type: multipart/mixed; boundary=abc",
        "", "Preamble", "--abc", 'Content-Type: multipart/alternative;\n\tboundary="abcdef"', "",
        "--abcdef", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", LETTER,
        "--abcdef", "Content-Type: text/html; charset=utf-8", "", html + "</body></html>", "--abcdef--", "",
        "--abc", "Content-Type: message/rfc822", "",
        "From: kunde@example.com", "Subject: Reklamation", "Content-Type: multipart/mixed; boundary=inner", "",
        "--inner", "Content-Type: text/plain", "", "Siehe Anhang.", "--inner",
        "Content-Type: application/pdf; name=lieferschein.pdf", "Content-Transfer-Encoding: base64", "", pdf,
        "--inner--", "",
        "--abc", "Content-Type: application/pdf; name=angebot.pdf", "Content-Transfer-Encoding: base64", "", pdf,
        "--abc", "Content-Type: text/plain; name=notiz.txt", "Content-Disposition: attachment", "", LETTER, ""])
    return text.replace("\n", newline).encode("utf-8")


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_large_nested_message_is_read_exactly(newline: str) -> None:
    parsed = parse_message(big_mail(newline))
    assert parsed.text == LETTER
    assert parsed.html is not None and parsed.html.count("<p>") == 40
    eml, angebot, notiz = parsed.attachments
    assert (angebot.filename, angebot.data) == ("angebot.pdf", PDF)
    assert (notiz.filename, notiz.data.decode()) == ("notiz.txt", LETTER.replace("\n", newline))
    inner = parse_message(eml.data)
    assert (eml.filename, inner.subject, inner.text) == ("Reklamation.eml", "Reklamation", "Siehe Anhang.")
    assert [(a.filename, a.data) for a in inner.attachments] == [("lieferschein.pdf", PDF)]
    assert parsed.problems == ["multipart end boundary missing"]


def test_large_bounce_keeps_its_status_blocks() -> None:
    raw = report("delivery-status").replace(b"Die Nachricht", LETTER.replace("\n", "\r\n").encode() + b"\r\nDie Nachricht")
    parsed = parse_message(raw)
    assert parsed.flags == {"bounce"}
    assert parsed.text.endswith("Die Nachricht konnte nicht zugestellt werden.")
    [status] = parsed.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Final-Recipient: rfc822; alt@example.de\r\nAction: failed" in status.data


# --- damaged mail ----------------------------------------------------------------------------------

def test_multipart_without_boundary_parameter_is_split_anyway() -> None:
    raw = attachment_mail(b"attachment; filename=a.pdf").replace(b"; boundary=b", b"")
    parsed = parse_message(raw)
    assert parsed.text == "Anbei."
    assert [a.data for a in parsed.attachments] == [b"%PDF-1.4\n"]
    assert "multipart without boundary" in parsed.problems


def test_multipart_whose_boundary_never_appears_keeps_its_text() -> None:
    raw = mail("""
        From: a@example.de
        Content-Type: multipart/mixed; boundary="gibt-es-nicht"

        Hallo, nur Text und keine Teile.
        """)
    parsed = parse_message(raw)
    assert parsed.text == "Hallo, nur Text und keine Teile.\n"
    assert "multipart boundary not found" in parsed.problems


def test_missing_end_boundary_is_noted() -> None:
    parsed = parse_message(ALTERNATIVE.replace(b"--=_alt--\r\n", b""))
    assert parsed.text.startswith("Sehr geehrter Herr Müller")
    assert "multipart end boundary missing" in parsed.problems


def test_truncated_base64_decodes_what_is_there() -> None:
    raw = attachment_mail(b"attachment; filename=a.pdf").replace(b"JVBERi0xLjQK", b"JVBERi0xLj")
    parsed = parse_message(raw)
    assert parsed.attachments[0].data == b"%PDF-1."
    assert "malformed base64 in a.pdf" in parsed.problems


def test_base64_with_garbage_characters_is_noted() -> None:
    raw = attachment_mail(b"attachment; filename=a.pdf").replace(b"JVBERi0xLjQK", b"JVBE*Ri0x!LjQK")
    parsed = parse_message(raw)
    assert parsed.attachments[0].data == b"%PDF-1.4\n"
    assert "malformed base64 in a.pdf" in parsed.problems


def test_headerless_text_is_kept_with_a_problem() -> None:
    parsed = parse_message(b"Sehr geehrte Damen und Herren, bitte rufen Sie zurueck.\r\n")
    assert parsed.text.startswith("Sehr geehrte Damen und Herren")
    assert "no header fields" in parsed.problems


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\x00\x01\x02\x03 binary \xff\x00"])
def test_nothing_usable_raises(raw: bytes) -> None:
    with pytest.raises(UnparsableMail):
        parse_message(raw)


def test_absurdly_deep_nesting_keeps_the_header() -> None:
    depth = sys.getrecursionlimit()  # the stdlib parser recurses once or more per level
    raw = b"From: a@example.de\r\nSubject: tief\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    raw += b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1) for n in range(depth))
    parsed = parse_message(raw)
    assert parsed.subject == "tief"
    assert parsed.problems


# --- flags -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "flags"), [
    (b"Auto-Submitted: auto-replied", {"auto_reply"}),
    (b"Auto-Submitted: auto-generated (Abwesenheit)", {"auto_reply"}),
    (b"Auto-Submitted: no", set()),
    (b"X-Autoreply: yes", {"auto_reply"}),
    (b"X-Autorespond: Abwesenheitsnotiz", {"auto_reply"}),
    (b"X-Auto-Response-Suppress: All", set()),  # asks others not to answer; says nothing of itself
    (b"Precedence: auto_reply", {"auto_reply"}),
    (b"Precedence: bulk", {"bulk"}),
    (b"Precedence: junk", {"bulk"}),
    (b"Precedence: list", {"bulk"}),
    (b"List-Id: Kundeninfo <kundeninfo.example.de>", {"bulk"}),
    (b"List-Unsubscribe: <mailto:leave@example.de>", {"bulk"}),
    (b"Sender: MAILER-DAEMON@mx.example.de", {"bounce"}),
    (b"X-Mailer: Outlook", set()),
])
def test_flags_from_headers(header: bytes, flags: set[str]) -> None:
    raw = PLAIN.replace(b"Subject:", header + b"\r\nSubject:")
    assert parse_message(raw).flags == flags
    assert parse_headers(raw.split(b"\r\n\r\n")[0]).flags == flags


@pytest.mark.parametrize("sender", [b"Mail Delivery System <MAILER-DAEMON@mx.example.de>", b"postmaster@example.de"])
def test_bounce_from_the_mail_system(sender: bytes) -> None:
    assert parse_message(PLAIN.replace(b"Erika Muster <erika.muster@muster-gmbh.de>", sender)).flags == {"bounce"}


def report(kind: str, return_path: str = "<>") -> bytes:
    return mail(f"""
        Return-Path: {return_path}
        From: Mail System <system@mx.example.de>
        Content-Type: multipart/report; report-type={kind}; boundary=r

        --r
        Content-Type: text/plain

        Die Nachricht konnte nicht zugestellt werden.
        --r
        Content-Type: message/{kind}

        Final-Recipient: rfc822; alt@example.de
        Action: failed

        --r--
        """)


def test_delivery_status_report_is_a_bounce() -> None:
    parsed = parse_message(report("delivery-status", "<bounces@mx.example.de>"))
    assert parsed.flags == {"bounce"}
    assert parsed.text == "Die Nachricht konnte nicht zugestellt werden."
    assert parse_headers(report("delivery-status").split(b"\r\n\r\n")[0]).flags == {"bounce"}


def test_report_from_the_null_return_path_is_a_bounce_but_a_read_receipt_is_not() -> None:
    assert parse_message(report("x-unknown-report")).flags == {"bounce"}
    assert parse_message(report("x-unknown-report", "<system@mx.example.de>")).flags == set()
    assert parse_message(report("disposition-notification")).flags == set()


# --- header-only fetches ---------------------------------------------------------------------------

def test_parse_headers_for_an_oversized_message() -> None:
    header = ALTERNATIVE.split(b"\r\n\r\n")[0] + b"\r\nMessage-ID: <gross@example.de>\r\n\r\n"
    parsed = parse_headers(header)
    assert parsed.headers_only
    assert (parsed.subject, parsed.message_id, parsed.from_[0].address) == (
        "Angebot", "<gross@example.de>", "erika.muster@muster-gmbh.de")
    assert (parsed.text, parsed.html, parsed.attachments) == ("", None, [])
    assert not parse_message(ALTERNATIVE).headers_only


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"kein Header"])
def test_parse_headers_without_any_header_raises(raw: bytes) -> None:
    with pytest.raises(UnparsableMail):
        parse_headers(raw)


# --- clean_text ------------------------------------------------------------------------------------

def test_clean_text() -> None:
    assert clean_text("a\x00b\x01c\x1fd\te\nf\rg") == "abcd\te\nf\rg"
    assert clean_text("lone \udcfc surrogate") == "lone \ufffd surrogate"
    assert clean_text("Grüße 😀") == "Grüße 😀"


# --- the standard library's email test corpus -------------------------------------------------------

CORPUS = corpus_files()


def strings(parsed: ParsedMail) -> Iterator[str]:
    yield from (parsed.subject, parsed.text, parsed.html or "", *parsed.references, *parsed.problems)
    yield from (parsed.message_id or "", parsed.in_reply_to or "")
    for address in addresses(parsed):
        yield from (address.name, address.address)
    for attachment in parsed.attachments:
        yield from (attachment.filename, attachment.content_type, attachment.content_id or "")


def addresses(parsed: ParsedMail) -> list[Address]:
    return [*parsed.from_, *parsed.sender, *parsed.reply_to, *parsed.to, *parsed.cc, *parsed.bcc]


@pytest.mark.parametrize("path", CORPUS or [None], ids=lambda path: path.name if path else "missing")
def test_stdlib_corpus_message_parses_sanely(path: Path | None) -> None:
    if path is None:
        require_corpus()  # fails under CI, skips elsewhere
    raw = path.read_bytes()
    parsed = parse_message(raw)
    assert all("\x00" not in value and clean_text(value) == value for value in strings(parsed))
    assert parsed.sent_at is None or parsed.sent_at.utcoffset() == timedelta(0)
    assert all(a.address == a.address.strip().lower() and "@" in a.address for a in addresses(parsed))
    assert parsed.flags <= {"auto_reply", "bounce", "bulk"}
    assert message_key(parsed, raw)
    # Attachments decode to what the standard library decodes for the same part.
    stdlib_payloads = [part.get_payload(decode=True) for part in message_from_bytes(raw).walk()
                       if not part.is_multipart() and part.get_filename()]
    ours = [attachment.data for attachment in parsed.attachments if attachment.filename]
    assert [payload for payload in stdlib_payloads if payload in ours] == stdlib_payloads
