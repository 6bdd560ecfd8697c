"""The test mailbox of bench/mail.py: repeatable German/English business mail and the stdlib's test messages.

    corpus = build_corpus(10_000, seed=20261126)   # corpus.messages: raw bytes with CRLF line ends

What a sales or office inbox of a small DACH company holds, written byte by byte (no EmailMessage: it
costs ≈ 4 ms a message, and writing the MIME ourselves lets us choose what real mailers send):
- people at ≈ 170 customer and supplier companies (DE, AT, CH, UK/US) and private customers on freemail;
  about 300 of them are in the CRM (`Corpus.contacts`), so matching finds most senders, by address or
  by their company's domain;
- plain text (quoted-printable, 8bit, base64, some windows-1252), multipart/alternative in the styles
  of Outlook (a bulky <style> block and an inline logo, multipart/related), Gmail and Apple Mail;
- replies and forwards with In-Reply-To and References (some with In-Reply-To only) quoting their
  parent; Received, DKIM-Signature and Authentication-Results headers as a mail server adds them;
- ≈ 8 % with PDF/PNG/DOCX/XLSX-like attachments of 20–300 KB (random bytes: real ones are compressed
  too), filenames in RFC 2047 and RFC 2231 style, and a few scans of 1–2 MB;
- automated mail (shops, carriers, newsletters), some HTML-only;
- the real, partly broken messages of CPython's email test corpus (test/test_email/data/msg_*.txt),
  each copy with a fresh Message-ID so that no two messages of the mailbox are the same.
The shares are chosen so that 10,000 messages come to about 90 MB (IMAP-NOTES measured 86.6 MB).
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path

from lookup import BRANCHES, FIRST_NAMES_F, FIRST_NAMES_M, LAST_NAMES, STREETS

OWN_DOMAIN = "example.de"
START = datetime(2024, 1, 8, 7, 30)
MEAN_GAP_MINUTES = 70.0  # 10,000 messages span about 16 months

# Shares of the generated mail (the stdlib's messages come on top, STDLIB_SHARE of the mailbox).
KIND_WEIGHTS = {"plain": 30, "html": 27, "reply": 22, "attachment": 8, "notification": 6, "forward": 5}
STDLIB_SHARE = 0.03
LARGE_SHARE = 0.0005  # "a few larger": 5 scans of 1-2 MB in 10,000 messages
STORED_PEOPLE = 300  # customer contacts in the CRM
COMPANIES = 170

FIRST_NAMES_EN = ("James John Robert Michael William David Richard Thomas Emma Olivia Sophie Charlotte Emily "
                  "Grace Hannah Lucy Daniel Matthew Andrew Sarah Laura Rachel").split()
LAST_NAMES_EN = ("Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright Thompson Evans "
                 "Walker White Roberts Green Hall Wood Jackson Clarke").split()
EN_BRANCHES = ("Engineering", "Logistics", "Components", "Systems", "Trading", "Industries", "Solutions")
COUNTRIES = (("de", 0.68, ("GmbH", "GmbH & Co. KG", "AG", "KG", "e.K.")), ("at", 0.10, ("GmbH", "GesmbH", "KG")),
             ("ch", 0.08, ("AG", "GmbH")), ("co.uk", 0.08, ("Ltd",)), ("com", 0.06, ("Inc.", "LLC")))
FREEMAIL = ("gmx.de", "web.de", "t-online.de", "gmail.com", "outlook.de", "gmx.at", "bluewin.ch")
CITIES = {"de": (("10115", "Berlin"), ("80331", "München"), ("50667", "Köln"), ("70173", "Stuttgart"),
                 ("04109", "Leipzig"), ("90402", "Nürnberg")),
          "at": (("1010", "Wien"), ("8010", "Graz"), ("4020", "Linz")),
          "ch": (("8001", "Zürich"), ("3011", "Bern"), ("4051", "Basel")),
          "co.uk": (("M1 1AE", "Manchester"), ("B1 1BB", "Birmingham")),
          "com": (("60601", "Chicago"), ("10001", "New York"))}
PRODUCTS = ("Hydraulikzylinder HZ-200", "Edelstahlgehäuse Typ B", "Steuerplatine SP-4", "Förderband FB 1200",
            "Dichtungssatz DS-16", "Schaltschrank S3", "Wartungsvertrag Premium", "Laserzuschnitt 3 mm",
            "Pulverbeschichtung RAL 7016", "Ersatzmotor M-90", "Sensorkabel 5 m", "Montagerahmen MR-40")
PRODUCTS_EN = ("hydraulic cylinder HZ-200", "stainless housing type B", "control board SP-4", "conveyor FB 1200",
               "seal kit DS-16", "service contract", "spare motor M-90", "sensor cable 5 m")
WEEKDAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MAILERS = ("Microsoft Outlook 16.0", "Mozilla Thunderbird 115.6", "Apple Mail (2.3774)", "Gmail", "iPhone Mail")


# === people =============================================================================================

@dataclass(frozen=True, slots=True)
class Company:
    name: str
    domain: str
    country: str  # top-level domain: de, at, ch, co.uk, com
    street: str
    postal_code: str
    city: str

    @property
    def english(self) -> bool:
        return self.country in ("co.uk", "com")


@dataclass(frozen=True, slots=True)
class Person:
    salutation: str  # Herr / Frau / "" (English)
    first: str
    last: str
    address: str
    company: Company | None  # None: a private customer on freemail
    position: str
    stored: bool  # in the CRM before the import

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def english(self) -> bool:
        return self.company is not None and self.company.english


STAFF = tuple(Person(s, f, l, f"{a}@{OWN_DOMAIN}", None, p, False) for s, f, l, a, p in (
    ("Frau", "Anna", "Berger", "anna.berger", "Vertriebsleitung"),
    ("Herr", "Tobias", "Krämer", "tobias.kraemer", "Innendienst"),
    ("Frau", "Sabine", "Yilmaz", "sabine.yilmaz", "Buchhaltung"),
    ("Herr", "Lukas", "Hoffmann", "lukas.hoffmann", "Technik"),
))
SHARED_INBOXES = (("Vertrieb", f"vertrieb@{OWN_DOMAIN}"), ("Info", f"info@{OWN_DOMAIN}"),
                  ("Buchhaltung", f"buchhaltung@{OWN_DOMAIN}"))
_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ł": "l",
                        "Ł": "L", " ": "-", "&": "", ".": ""})


def ascii_part(text: str) -> str:
    """An address or domain part from a name: umlauts spelled out, other accents dropped."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII))
    return re.sub(r"-+", "-", decomposed.encode("ascii", "ignore").decode().lower()).strip("-")


def make_company(rng: random.Random, used: set[str]) -> Company:
    country = rng.choices(COUNTRIES, weights=[c[1] for c in COUNTRIES])[0]
    tld, _, forms = country
    if tld in ("co.uk", "com"):
        stem = f"{rng.choice(LAST_NAMES_EN)} {rng.choice(EN_BRANCHES)}"
    else:
        stem = f"{rng.choice(LAST_NAMES)} {rng.choice(BRANCHES)}"
    domain = f"{ascii_part(stem)}.{tld}"
    while domain in used:
        domain = f"{ascii_part(stem)}{rng.randrange(2, 99)}.{tld}"
    used.add(domain)
    postal_code, city = rng.choice(CITIES[tld])
    return Company(f"{stem} {rng.choice(forms)}", domain, tld, f"{rng.choice(STREETS)} {rng.randrange(1, 120)}",
                   postal_code, city)


def make_person(rng: random.Random, company: Company | None, used: set[str]) -> Person:
    if company is not None and company.english:
        salutation, first, last = "", rng.choice(FIRST_NAMES_EN), rng.choice(LAST_NAMES_EN)
    elif rng.random() < 0.5:
        salutation, first, last = "Herr", rng.choice(FIRST_NAMES_M), rng.choice(LAST_NAMES)
    else:
        salutation, first, last = "Frau", rng.choice(FIRST_NAMES_F), rng.choice(LAST_NAMES)
    domain = company.domain if company else rng.choice(FREEMAIL)
    style = rng.random()
    local = (f"{ascii_part(first)}.{ascii_part(last)}" if style < 0.7 else
             f"{ascii_part(first)[0]}.{ascii_part(last)}" if style < 0.9 else ascii_part(last))
    address = f"{local}@{domain}"
    while address in used:
        address = f"{local}{rng.randrange(2, 99)}@{domain}"
    used.add(address)
    position = rng.choice(("Einkauf", "Geschäftsführung", "Technik", "Projektleitung", "Buchhaltung", "Vertrieb"))
    return Person(salutation, first, last, address, company, position, stored=False)


def make_people(rng: random.Random) -> list[Person]:
    """Everyone who writes to us; the first STORED_PEOPLE of a shuffled list are in the CRM."""
    domains: set[str] = set()
    addresses: set[str] = set()
    companies = [make_company(rng, domains) for _ in range(COMPANIES)]
    people = [make_person(rng, company, addresses) for company in companies for _ in range(rng.randrange(2, 6))]
    people += [make_person(rng, None, addresses) for _ in range(len(people) // 8)]
    rng.shuffle(people)
    return [Person(p.salutation, p.first, p.last, p.address, p.company, p.position, index < STORED_PEOPLE)
            for index, p in enumerate(people)]


# === MIME, written out ==================================================================================

def header_text(value: str) -> str:
    """An unstructured header value, RFC 2047-encoded when it is not ASCII."""
    return value if value.isascii() else Header(value, "utf-8", maxlinelen=76).encode()


def mailbox(name: str, address: str, outlook: bool = False) -> str:
    """`Name <address>`; Outlook writes people as "Last, First" (quoted: the comma would split the list)."""
    if outlook and " " in name:
        first, _, last = name.partition(" ")
        name = f"{last}, {first}"
    return formataddr((name, address), charset="utf-8")


def encode_body(text: str, rng: random.Random) -> tuple[str, str, bytes]:
    """(charset, Content-Transfer-Encoding, body) in the mix real mailers send."""
    roll = rng.random()
    if roll < 0.12 and all(ord(c) < 256 or c in "€–„“" for c in text):
        data, charset = text.encode("cp1252", "replace"), "windows-1252"
        return charset, "quoted-printable", binascii.b2a_qp(data)
    data = text.encode()
    if roll < 0.55:
        return "utf-8", "quoted-printable", binascii.b2a_qp(data)
    if roll < 0.85:
        return "utf-8", "8bit", data
    return "utf-8", "base64", base64.encodebytes(data)


def text_part(text: str, subtype: str, rng: random.Random) -> bytes:
    charset, encoding, body = encode_body(text, rng)
    head = f'Content-Type: text/{subtype}; charset="{charset}"\nContent-Transfer-Encoding: {encoding}\n\n'
    return head.encode() + body


def boundary(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.5:
        return f"_{rng.getrandbits(32):03d}_DB{rng.getrandbits(48):012X}DB{rng.randrange(10**4):04d}_"  # Outlook
    if style < 0.8:
        return f"000000000000{rng.getrandbits(40):010x}"  # Gmail
    return f"Apple-Mail={rng.getrandbits(128):032X}"


def multipart(subtype: str, parts: list[bytes], rng: random.Random, params: str = "") -> bytes:
    mark = boundary(rng)
    head = f'Content-Type: multipart/{subtype};{params}\n\tboundary="{mark}"\n\n'.encode()
    inner = b"".join(b"--" + mark.encode() + b"\n" + part + b"\n" for part in parts)
    return head + inner + b"--" + mark.encode() + b"--\n"


def filename_params(name: str, rng: random.Random) -> tuple[str, str]:
    """(Content-Type name param, Content-Disposition filename param): Outlook's RFC 2047, else RFC 2231."""
    if name.isascii():
        return f'name="{name}"', f'filename="{name}"'
    if rng.random() < 0.5:
        encoded = Header(name, "utf-8").encode()
        return f'name="{encoded}"', f'filename="{encoded}"'
    quoted = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else
                     "".join(f"%{b:02X}" for b in c.encode()) for c in name)
    return f"name*=utf-8''{quoted}", f"filename*=utf-8''{quoted}"


def binary_part(content_type: str, name: str, data: bytes, rng: random.Random, inline_id: str | None = None) -> bytes:
    type_param, disposition_param = filename_params(name, rng)
    disposition = "inline" if inline_id else "attachment"
    lines = [f"Content-Type: {content_type};\n\t{type_param}", f"Content-Disposition: {disposition};\n\t"
             f"{disposition_param}; size={len(data)}", "Content-Transfer-Encoding: base64"]
    if inline_id:
        lines.append(f"Content-ID: <{inline_id}>")
    return ("\n".join(lines) + "\n\n").encode() + base64.encodebytes(data)


# === what people write ==================================================================================

@dataclass(slots=True)
class Facts:
    """The numbers a business mail mentions, drawn once per message."""

    product: str
    product_en: str
    qty: int
    order: str
    offer: str
    invoice: str
    price: str
    date: str

    @staticmethod
    def draw(rng: random.Random, when: datetime) -> Facts:
        due = when + timedelta(days=rng.randrange(3, 60))
        return Facts(rng.choice(PRODUCTS), rng.choice(PRODUCTS_EN), rng.choice((1, 2, 5, 10, 12, 25, 50, 100, 250)),
                     f"A-{rng.randrange(24000, 39999)}", f"AN-{when:%Y}-{rng.randrange(100, 9999):04d}",
                     f"RE{when:%y}{rng.randrange(10000, 99999)}", f"{rng.randrange(80, 48000):,}".replace(",", "."),
                     f"{due:%d.%m.%Y}")


TOPICS_DE = (
    ("Anfrage {product}", ("wir benötigen für ein laufendes Projekt {qty} Stück {product}. Bitte senden Sie uns "
                           "ein Angebot inklusive Lieferzeit und Versandkosten.",
                           "Falls Sie Staffelpreise ab {qty} Stück anbieten, nehmen Sie diese bitte mit auf. Eine "
                           "Lieferung bis zum {date} wäre ideal.")),
    ("Bestellung {order}", ("hiermit bestellen wir gemäß Ihrem Angebot {offer} {qty} Stück {product} zum Preis von "
                            "{price} EUR netto.", "Bitte bestätigen Sie den Liefertermin {date} kurz per E-Mail. "
                            "Lieferadresse wie gehabt, Wareneingang Tor 3.")),
    ("Rückfrage zu Angebot {offer}", ("vielen Dank für Ihr Angebot {offer}. Zu Position 2 ({product}) hätten wir "
                                      "noch eine Frage: Ist die Ausführung auch in Edelstahl V4A möglich?",
                                      "Außerdem bräuchten wir das Datenblatt und eine Zeichnung als PDF.")),
    ("Reklamation Lieferschein {order}", ("leider ist die Lieferung zu Auftrag {order} beschädigt bei uns "
                                          "angekommen. Bei {qty} Stück {product} ist die Verpackung aufgerissen.",
                                          "Fotos der Schäden reichen wir gerne nach. Bitte veranlassen Sie eine "
                                          "Ersatzlieferung bis spätestens {date}.")),
    ("Rechnung {invoice}", ("anbei erhalten Sie die Rechnung {invoice} über {price} EUR zu Ihrer Bestellung {order}.",
                            "Zahlbar innerhalb von 14 Tagen ohne Abzug bis zum {date}. Bei Fragen zur Rechnung "
                            "wenden Sie sich bitte an unsere Buchhaltung.")),
    ("Terminvorschlag Wartung", ("für die jährliche Wartung Ihrer Anlage schlagen wir den {date} vor. Unser "
                                 "Techniker wäre ab 8:00 Uhr vor Ort.", "Bitte geben Sie uns kurz Bescheid, ob der "
                                 "Termin passt, sonst finden wir gerne eine Alternative.")),
    ("Lieferterminverschiebung Auftrag {order}", ("aufgrund eines Engpasses bei unserem Zulieferer verschiebt sich "
                                                  "die Lieferung von {product} auf den {date}.",
                                                  "Wir bitten um Ihr Verständnis. Eine Teillieferung von {qty} "
                                                  "Stück wäre vorab möglich.")),
    ("Preisanpassung zum {date}", ("wir möchten Sie rechtzeitig darüber informieren, dass sich unsere Preise für "
                                   "{product} zum {date} um 4,5 % erhöhen.", "Bestellungen, die bis dahin eingehen, "
                                   "berechnen wir selbstverständlich noch zu den bisherigen Konditionen.")),
)
TOPICS_EN = (
    ("Request for quotation: {product_en}", ("we are looking for {qty} units of {product_en} for a project "
                                             "starting next quarter. Could you send us a quotation including "
                                             "lead time and shipping to Manchester?",)),
    ("Order {order}", ("please find our purchase order {order} for {qty} units of {product_en} at {price} EUR.",
                       "Kindly confirm the delivery date ({date}) at your earliest convenience.")),
    ("Invoice {invoice} overdue", ("according to our records invoice {invoice} for {price} EUR is still open.",
                                   "Could you check with your accounts department and let us know when payment "
                                   "can be expected?")),
    ("Meeting on {date}", ("thanks for the call earlier. As discussed, I'd suggest we meet on {date} to go through "
                           "the drawings for the {product_en}.", "Let me know if that works for your team.")),
    ("Shipment delay {order}", ("unfortunately the shipment for order {order} has been held at customs.",
                                "We expect it to be released by {date} and will keep you posted.")),
)
DISCLAIMER_DE = ("Diese E-Mail enthält vertrauliche und/oder rechtlich geschützte Informationen. Wenn Sie nicht "
                 "der richtige Adressat sind oder diese E-Mail irrtümlich erhalten haben, informieren Sie bitte "
                 "sofort den Absender und vernichten Sie diese Mail. Das unerlaubte Kopieren sowie die unbefugte "
                 "Weitergabe dieser Mail sind nicht gestattet.")
DISCLAIMER_EN = ("This message may contain confidential information. If you are not the intended recipient, "
                 "please notify the sender immediately and delete this e-mail from your system.")


def greeting(reader: Person | None, english: bool) -> str:
    if english:
        return f"Dear {reader.first}," if reader else "Dear Sir or Madam,"
    if reader is None:
        return "Sehr geehrte Damen und Herren,"
    if reader.salutation == "Herr":
        return f"Sehr geehrter Herr {reader.last},"
    return f"Sehr geehrte {reader.salutation or 'Frau'} {reader.last},"


def signature(writer: Person, rng: random.Random) -> str:
    english = writer.english
    closing = "Best regards," if english else rng.choice(("Mit freundlichen Grüßen", "Viele Grüße", "Gruß"))
    lines = [closing, writer.name]
    company = writer.company
    if company is not None:
        lines += [writer.position, "", company.name, company.street, f"{company.postal_code} {company.city}",
                  f"Tel. +49 {rng.randrange(30, 9999)} {rng.randrange(100000, 9999999)}-{rng.randrange(10, 99)}",
                  f"www.{company.domain}"]
        if not english and rng.random() < 0.6:
            lines += ["", f"Geschäftsführer: {rng.choice(FIRST_NAMES_M)} {rng.choice(LAST_NAMES)} · "
                      f"Amtsgericht {company.city} HRB {rng.randrange(1000, 99999)} · "
                      f"USt-IdNr. DE{rng.randrange(10**8, 10**9)}"]
        if rng.random() < 0.35:
            lines += ["", DISCLAIMER_EN if english else DISCLAIMER_DE]
    return "\n".join(lines)


def compose(writer: Person, reader: Person | None, facts: Facts, rng: random.Random) -> tuple[str, list[str]]:
    """(subject, paragraphs) of a new message from `writer`, in English when either side is English."""
    english = writer.english or (reader is not None and reader.english)
    subject, paragraphs = rng.choice(TOPICS_EN if english else TOPICS_DE)
    values = {name: getattr(facts, name) for name in Facts.__slots__}
    body = [greeting(reader, english), *(p.format(**values) for p in paragraphs)]
    return subject.format(**values), body + [signature(writer, rng)]


# === HTML in the styles of three mailers ================================================================

OUTLOOK_HEAD = ("<html xmlns:v=\"urn:schemas-microsoft-com:vml\" xmlns:o=\"urn:schemas-microsoft-com:office:office\" "
                "xmlns:w=\"urn:schemas-microsoft-com:office:word\" xmlns:m=\"http://schemas.microsoft.com/office/2004/"
                "12/omml\" xmlns=\"http://www.w3.org/TR/REC-html40\"><head><meta http-equiv=\"Content-Type\" "
                "content=\"text/html; charset=utf-8\"><meta name=\"Generator\" content=\"Microsoft Word 15 "
                "(filtered medium)\"><style><!--\n/* Font Definitions */\n@font-face\n\t{font-family:\"Cambria Math\";"
                "\n\tpanose-1:2 4 5 3 5 4 6 3 2 4;}\n@font-face\n\t{font-family:Calibri;\n\tpanose-1:2 15 5 2 2 2 4 "
                "3 2 4;}\n/* Style Definitions */\np.MsoNormal, li.MsoNormal, div.MsoNormal\n\t{margin:0cm;\n\t"
                "font-size:11.0pt;\n\tfont-family:\"Calibri\",sans-serif;\n\tmso-fareast-language:EN-US;}\na:link, "
                "span.MsoHyperlink\n\t{mso-style-priority:99;\n\tcolor:#0563C1;\n\ttext-decoration:underline;}\n"
                "span.E-MailFormatvorlage17\n\t{mso-style-type:personal-compose;\n\tfont-family:\"Calibri\",sans-serif;"
                "\n\tcolor:windowtext;}\n.MsoChpDefault\n\t{mso-style-type:export-only;\n\tfont-family:\"Calibri\","
                "sans-serif;\n\tmso-fareast-language:EN-US;}\n@page WordSection1\n\t{size:612.0pt 792.0pt;\n\t"
                "margin:70.85pt 70.85pt 2.0cm 70.85pt;}\ndiv.WordSection1\n\t{page:WordSection1;}\n--></style>"
                "<!--[if gte mso 9]><xml>\n<o:shapedefaults v:ext=\"edit\" spidmax=\"1026\" />\n</xml><![endif]-->"
                "</head><body lang=\"DE\" link=\"#0563C1\" vlink=\"#954F72\" style=\"word-wrap:break-word\">"
                "<div class=\"WordSection1\">")


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def outlook_html(paragraphs: list[str], logo_id: str | None) -> str:
    body = "".join("<p class=\"MsoNormal\">" + html_escape(p).replace("\n", "<br>\n") + "<o:p></o:p></p>\n"
                   "<p class=\"MsoNormal\"><o:p>&nbsp;</o:p></p>\n" for p in paragraphs)
    logo = (f"<p class=\"MsoNormal\"><img width=\"180\" height=\"48\" style=\"width:1.875in;height:.5in\" "
            f"id=\"Grafik_x0020_1\" src=\"cid:{logo_id}\" alt=\"Logo\"></p>\n") if logo_id else ""
    return OUTLOOK_HEAD + body + logo + "</div></body></html>"


def gmail_html(paragraphs: list[str]) -> str:
    return "<div dir=\"ltr\">" + "".join(f"<div>{html_escape(p).replace(chr(10), '<br>')}</div><div><br></div>"
                                         for p in paragraphs) + "</div>\n"


def apple_html(paragraphs: list[str]) -> str:
    return ("<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"></head>"
            "<body style=\"overflow-wrap: break-word; -webkit-nbsp-mode: space; line-break: after-white-space;\">"
            + "".join(f"{html_escape(p).replace(chr(10), '<br>')}<div><br></div>" for p in paragraphs)
            + "</body></html>\n")


NOTIFICATION_ROW = ("<tr><td style=\"padding:8px 24px;font-family:Arial,Helvetica,sans-serif;font-size:14px;"
                    "line-height:20px;color:#333333;\">{text}</td></tr>\n")


def newsletter_html(title: str, lines: list[str], rng: random.Random) -> str:
    rows = "".join(NOTIFICATION_ROW.format(text=html_escape(line)) for line in lines)
    tracking = "".join(f"<a href=\"https://t.news.example.net/c/{rng.getrandbits(96):024x}\" style=\"color:#0066cc\">"
                       f"Link {n}</a> " for n in range(rng.randrange(8, 30)))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html_escape(title) + "</title></head>"
            "<body style=\"margin:0;padding:0;background:#f2f2f2\"><table role=\"presentation\" width=\"100%\" "
            "cellpadding=\"0\" cellspacing=\"0\" border=\"0\"><tr><td align=\"center\"><table width=\"600\" "
            "style=\"background:#ffffff\">" + rows * rng.randrange(4, 12) + "<tr><td>" + tracking + "</td></tr>"
            "</table></td></tr></table></body></html>\n")


# === one message ========================================================================================

@dataclass(slots=True)
class Sent:
    """What a later reply needs of a message."""

    message_id: str
    references: list[str]
    subject: str
    writer: Person
    reader: Person | None
    text: str
    when: datetime


@dataclass(slots=True)
class Writer:
    """Builds the corpus's messages one after another; remembers recent ones for replies."""

    rng: random.Random
    people: list[Person]
    logos: dict[str, bytes] = field(default_factory=dict)
    recent: list[Sent] = field(default_factory=list)

    def message_id(self, domain: str) -> str:
        return f"<{self.rng.getrandbits(64):016X}.{self.rng.getrandbits(32):08x}@{domain}>"

    def trace_headers(self, writer: Person, to: str, when: datetime) -> list[str]:
        rng, domain = self.rng, writer.address.rpartition("@")[2]
        stamp = format_datetime(when)
        signature = base64.b64encode(rng.randbytes(256)).decode()
        folded = "\n\t ".join(signature[i:i + 70] for i in range(0, len(signature), 70))
        return [f"Return-Path: <{writer.address}>",
                f"Received: from mail.{domain} (mail.{domain} [{rng.randrange(2, 223)}.{rng.randrange(256)}."
                f"{rng.randrange(256)}.{rng.randrange(1, 255)}])\n\tby mx01.{OWN_DOMAIN} (Postfix) with ESMTPS id "
                f"4{rng.getrandbits(40):010X}\n\tfor <{to}>; {stamp}",
                f"Received: from [10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}] by "
                f"mail.{domain} with ESMTPSA id {rng.getrandbits(48):012x}; {stamp}",
                f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain};\n\ts=selector1; "
                f"t={int(when.timestamp())}; h=From:To:Subject:Date:Message-ID:MIME-Version;\n\t"
                f"bh={base64.b64encode(rng.randbytes(32)).decode()};\n\tb={folded}",
                f"Authentication-Results: mx01.{OWN_DOMAIN}; dkim=pass header.d={domain};\n\tspf=pass "
                f"smtp.mailfrom={writer.address}; dmarc=pass header.from={domain}"]

    def headers(self, writer: Person, to: list[tuple[str, str]], cc: list[tuple[str, str]], subject: str,
                when: datetime, message_id: str, parent: Sent | None, references: list[str]) -> str:
        rng = self.rng
        outlook = rng.random() < 0.4
        lines = self.trace_headers(writer, to[0][1], when) + [
            f"From: {mailbox(writer.name, writer.address, outlook)}",
            "To: " + ",\n\t".join(mailbox(name, address, outlook) for name, address in to)]
        if cc:
            lines.append("Cc: " + ",\n\t".join(mailbox(name, address, outlook) for name, address in cc))
        lines += [f"Subject: {header_text(subject)}", f"Date: {format_datetime(when)}", f"Message-ID: {message_id}"]
        if parent is not None:
            lines.append(f"In-Reply-To: {parent.message_id}")
        if references:
            lines.append("References: " + "\n\t".join(references))
        mailer = rng.choice(MAILERS)
        lines += [f"X-Mailer: {mailer}" if "Outlook" in mailer or "iPhone" in mailer else f"User-Agent: {mailer}",
                  "MIME-Version: 1.0", f"Content-Language: {'en-GB' if writer.english else 'de-DE'}"]
        if outlook:
            lines.append(f"Thread-Index: {base64.b64encode(rng.randbytes(22)).decode()}")
        return "\n".join(lines) + "\n"

    def body(self, paragraphs: list[str], style: str, writer: Person) -> bytes:
        """text/plain, or multipart/alternative (Outlook's with an inline logo in multipart/related)."""
        rng, text = self.rng, "\n\n".join(paragraphs) + "\n"
        plain = text_part(text, "plain", rng)
        if style == "plain":
            return plain
        if style == "gmail":
            return multipart("alternative", [plain, text_part(gmail_html(paragraphs), "html", rng)], rng)
        if style == "apple":
            return multipart("alternative", [plain, text_part(apple_html(paragraphs), "html", rng)], rng)
        logo_id = f"image001.png@01DA{rng.getrandbits(32):08X}.{rng.getrandbits(32):08X}"
        html = text_part(outlook_html(paragraphs, logo_id if writer.company else None), "html", rng)
        alternative = multipart("alternative", [plain, html], rng)
        if writer.company is None:
            return alternative
        logo = binary_part("image/png", "image001.png", self.logo(writer.company), rng, inline_id=logo_id)
        return multipart("related", [alternative, logo], rng, ' type="multipart/alternative";')

    def logo(self, company: Company) -> bytes:
        """Each company's signature logo, the same bytes in every mail (the archive stores it once)."""
        if company.domain not in self.logos:
            self.logos[company.domain] = b"\x89PNG\r\n\x1a\n" + self.rng.randbytes(self.rng.randrange(3_000, 12_000))
        return self.logos[company.domain]

    def style(self) -> str:
        return self.rng.choices(("plain", "outlook", "gmail", "apple"), weights=(45, 30, 15, 10))[0]

    def reader_for(self, writer: Person) -> tuple[Person | None, list[tuple[str, str]]]:
        """Who a customer writes to: a colleague of ours by name, or a shared inbox."""
        if self.rng.random() < 0.6:
            reader = self.rng.choice(STAFF)
            return reader, [(reader.name, reader.address)]
        return None, [self.rng.choice(SHARED_INBOXES)]

    def copies(self, writer: Person) -> list[tuple[str, str]]:
        """Cc: a colleague at the writer's company now and then (so several contacts get the mail)."""
        if writer.company is None or self.rng.random() > 0.3:
            return []
        colleagues = [p for p in self.people if p.company == writer.company and p != writer]
        return [(p.name, p.address) for p in colleagues[:self.rng.randrange(1, 3)]]

    def remember(self, sent: Sent) -> None:
        self.recent.append(sent)
        if len(self.recent) > 400:
            del self.recent[:100]

    def new_message(self, when: datetime, style: str | None = None, attachments: list[bytes] | None = None) -> bytes:
        rng = self.rng
        writer = rng.choice(self.people)
        reader, to = self.reader_for(writer)
        facts = Facts.draw(rng, when)
        subject, paragraphs = compose(writer, reader, facts, rng)
        message_id = self.message_id(writer.address.rpartition("@")[2])
        head = self.headers(writer, to, self.copies(writer), subject, when, message_id, None, [])
        body = self.body(paragraphs, style or self.style(), writer)
        if attachments:
            body = multipart("mixed", [body, *attachments], rng)
        self.remember(Sent(message_id, [], subject, writer, reader, "\n\n".join(paragraphs), when))
        return head.encode() + body

    def reply(self, when: datetime) -> bytes:
        """An answer to a recent message: by its reader (one of us) or, more often, the customer again."""
        rng = self.rng
        if not self.recent:
            return self.new_message(when)
        parent = rng.choice(self.recent[-200:])
        writer = parent.writer if rng.random() < 0.5 or parent.reader is None else parent.reader
        reader = parent.reader if writer is parent.writer else parent.writer
        to = [(reader.name, reader.address)] if reader else [rng.choice(SHARED_INBOXES)]
        prefix = "Re: " if writer.english else rng.choice(("AW: ", "Re: ", "AW: AW: "))
        subject = prefix + parent.subject.removeprefix("AW: ").removeprefix("Re: ")
        facts = Facts.draw(rng, when)
        _, paragraphs = compose(writer, reader, facts, rng)
        paragraphs = [paragraphs[0], self.answer(writer), paragraphs[-1], quote(parent, writer.english, rng)]
        # Some mailers send In-Reply-To alone: commhub then finds the thread through the parent's row.
        references = [] if rng.random() < 0.1 else (parent.references + [parent.message_id])[-10:]
        message_id = self.message_id(writer.address.rpartition("@")[2])
        head = self.headers(writer, to, [], subject, when, message_id, parent, references)
        self.remember(Sent(message_id, references, subject, writer, reader, "\n\n".join(paragraphs[:3]), when))
        return head.encode() + self.body(paragraphs, self.style(), writer)

    def answer(self, writer: Person) -> str:
        if writer.english:
            return self.rng.choice(("Thanks for your message, that works for us.",
                                    "Could you please send the updated documents?"))
        return self.rng.choice(("vielen Dank für Ihre Nachricht. Das passt so für uns.",
                                "danke für die schnelle Rückmeldung. Können Sie uns die Unterlagen noch einmal "
                                "aktualisiert zusenden?", "wie telefonisch besprochen bestätigen wir hiermit den "
                                "Termin. Bitte denken Sie an die Zugangskarte für das Werksgelände."))

    def forward(self, when: datetime) -> bytes:
        """A colleague forwards a customer's mail internally ("WG:")."""
        rng = self.rng
        if not self.recent:
            return self.new_message(when)
        parent = rng.choice(self.recent[-200:])
        writer, reader = rng.sample(STAFF, 2)
        subject = "WG: " + parent.subject
        paragraphs = [f"Hallo {reader.first},", "kannst du dich bitte darum kümmern? Danke!",
                      f"Gruß\n{writer.first}", quote(parent, False, rng)]
        message_id = self.message_id(OWN_DOMAIN)
        head = self.headers(writer, [(reader.name, reader.address)], [], subject, when, message_id, None, [])
        return head.encode() + self.body(paragraphs, self.style(), writer)

    def notification(self, when: datetime) -> bytes:
        """Automated mail: shops, carriers, SaaS invoices, newsletters; a third HTML-only."""
        rng = self.rng
        sender, domain, title = rng.choice((
            ("DHL Paket", "dhl.de", "Ihre Sendung wird heute zugestellt"),
            ("Amazon Business", "amazon.de", "Ihre Bestellung wurde versandt"),
            ("Telekom Rechnung", "telekom.de", "Ihre Rechnung für {month} ist da"),
            ("IHK Newsletter", "ihk.de", "IHK-Newsletter {month}: Fachkräfte, Energie, Förderprogramme"),
            ("Atlassian", "atlassian.com", "[JIRA] Updates for SUP-{n}"),
            ("LinkedIn", "linkedin.com", "You appeared in {n} searches this week")))
        title = title.format(month=f"{when:%m/%Y}", n=rng.randrange(10, 9999))
        lines = [title, f"Kundennummer {rng.randrange(10**6, 10**7)} · Vorgang {rng.getrandbits(40):X}",
                 "Sie erhalten diese E-Mail, weil Sie sich für Benachrichtigungen angemeldet haben.",
                 "Abmelden | Datenschutz | Impressum"]
        html = text_part(newsletter_html(title, lines, rng), "html", rng)
        body = html if rng.random() < 1 / 3 else multipart("alternative", [text_part("\n".join(lines), "plain", rng),
                                                                           html], rng)
        message_id = self.message_id(f"mail.{domain}")
        head = (f"From: {mailbox(sender, f'noreply@{domain}')}\nTo: {SHARED_INBOXES[1][1]}\n"
                f"Subject: {header_text(title)}\nDate: {format_datetime(when)}\nMessage-ID: {message_id}\n"
                f"List-Unsubscribe: <https://{domain}/unsubscribe/{rng.getrandbits(64):x}>\n"
                "Precedence: bulk\nMIME-Version: 1.0\n")
        return head.encode() + body

    def attachment(self, size: int, large: bool = False) -> bytes:
        """A PDF, PNG, DOCX or XLSX of `size` bytes; random content, as compressed files look."""
        rng = self.rng
        kinds = (("application/pdf", b"%PDF-1.7\n", ("Angebot_{n}.pdf", "Rechnung_{n}.pdf", "Lieferschein {n}.pdf",
                                                     "Datenblatt_Größe_{n}.pdf", "Quotation_{n}.pdf")),
                 ("image/png", b"\x89PNG\r\n\x1a\n", ("Screenshot {n}.png", "Foto_Schäden_{n}.png", "image{n}.png")),
                 ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04",
                  ("Vertrag_Entwurf_v{n}.docx", "Übersicht Änderungen {n}.docx")),
                 ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04",
                  ("Preisliste_{n}.xlsx", "Bestellung_{n}.xlsx")))
        content_type, magic, names = kinds[0] if large else rng.choices(kinds, weights=(55, 20, 15, 10))[0]
        name = ("Scan_{n}.pdf" if large else rng.choice(names)).format(n=rng.randrange(1000, 99999))
        return binary_part(content_type, name, magic + rng.randbytes(size - len(magic)), rng)


def quote(parent: Sent, english: bool, rng: random.Random) -> str:
    """The parent below the answer: Outlook's header block, or "On … wrote:" with `> ` lines."""
    text = parent.text[:3000]
    if rng.random() < 0.5:
        head = (f"From: {parent.writer.name} <{parent.writer.address}>\nSent: {parent.when:%d %B %Y %H:%M}\n"
                f"Subject: {parent.subject}" if english else
                f"Von: {parent.writer.name} <{parent.writer.address}>\nGesendet: "
                f"{WEEKDAYS_DE[parent.when.weekday()]}, {parent.when:%d.%m.%Y %H:%M}\nBetreff: {parent.subject}")
        return "-----Original Message-----\n" + head + "\n\n" + text if english else head + "\n\n" + text
    intro = (f"On {parent.when:%a, %d %b %Y at %H:%M}, {parent.writer.name} <{parent.writer.address}> wrote:"
             if english else f"Am {parent.when:%d.%m.%Y} um {parent.when:%H:%M} schrieb {parent.writer.name} "
                             f"<{parent.writer.address}>:")
    return intro + "\n" + "\n".join("> " + line if line else ">" for line in text.split("\n"))


def attachment_size(rng: random.Random) -> int:
    """20–300 KB, most near the low end (screenshots, one-page PDFs): median 21 KB, mean 40 KB, 10 % over 85 KB."""
    return int(20_000 * 15 ** (rng.random() ** 6))


# === the stdlib's test messages =========================================================================

def stdlib_messages() -> list[tuple[str, bytes]]:
    """CPython's email test corpus (test/test_email/data/msg_*.txt): real, odd, partly broken mail."""
    import test.test_email  # noqa: PLC0415 - only here: the package is big and only this function needs it

    data = Path(test.test_email.__file__).parent / "data"
    return [(path.name, path.read_bytes()) for path in sorted(data.glob("msg_*.txt"))]


MESSAGE_ID_LINE = re.compile(rb"^message-id:.*\n(?:[ \t].*\n)*", re.IGNORECASE | re.MULTILINE)


def fresh_copy(raw: bytes, message_id: str) -> bytes:
    """The message as IMAP would hold it (no mbox `From ` line) with a new Message-ID instead of its own."""
    raw = raw.replace(b"\r\n", b"\n")
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    head, separator, body = raw.partition(b"\n\n")
    head = MESSAGE_ID_LINE.sub(b"", head + b"\n").rstrip(b"\n")
    return f"Message-ID: {message_id}\n".encode() + head + separator + body


# === the corpus =========================================================================================

@dataclass(slots=True)
class Corpus:
    messages: list[bytes]  # CRLF line ends, as APPEND sends them and the server stores them
    contacts: list[Person]  # the people in the CRM before the import
    kinds: Counter[str]
    attachments: int  # attachment parts, inline logos not counted

    @property
    def total_bytes(self) -> int:
        return sum(len(message) for message in self.messages)

    @property
    def without_body_separator(self) -> int:
        """Messages whose header never ends in an empty line (the stdlib's msg_35.txt): mbsync skips them."""
        return sum(1 for message in self.messages if b"\r\n\r\n" not in message)


def plan(count: int, rng: random.Random) -> list[str]:
    """The kind of each message, in mailbox order."""
    stdlib = max(len(stdlib_messages()), round(count * STDLIB_SHARE))
    large = max(1, round(count * LARGE_SHARE))
    generated = max(0, count - stdlib - large)
    kinds = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()), k=generated)
    kinds += ["stdlib"] * stdlib + ["large"] * large
    rng.shuffle(kinds)
    return kinds[:count]


def build_corpus(count: int, seed: int) -> Corpus:
    """`count` distinct messages, the same bytes for the same (count, seed)."""
    rng = random.Random(seed)
    people = make_people(rng)
    writer = Writer(rng, people)
    originals = stdlib_messages()
    kinds = plan(count, rng)
    messages: list[bytes] = []
    attachments = copies = 0
    when = START
    for index, kind in enumerate(kinds):
        when += timedelta(minutes=rng.expovariate(1 / MEAN_GAP_MINUTES))
        local = when.replace(tzinfo=timezone(timedelta(hours=2 if 4 <= when.month <= 10 else 1)))
        if kind == "stdlib":
            name, raw = originals[copies % len(originals)]
            copies += 1
            message = fresh_copy(raw, f"<bench.{index}.{rng.getrandbits(48):012x}.{name}@stdlib.invalid>")
        else:
            message, added = make_message(writer, kind, local)
            attachments += added
        messages.append(message.replace(b"\n", b"\r\n"))
    return Corpus(messages, [p for p in people if p.stored], Counter(kinds), attachments)


def make_message(writer: Writer, kind: str, when: datetime) -> tuple[bytes, int]:
    """(raw message with LF line ends, attachments in it)."""
    makers: dict[str, Callable[[datetime], bytes]] = {
        "plain": lambda w: writer.new_message(w, "plain"), "html": lambda w: writer.new_message(
            w, writer.rng.choice(("outlook", "gmail", "apple"))),
        "reply": writer.reply, "forward": writer.forward, "notification": writer.notification}
    if kind in makers:
        return makers[kind](when), 0
    if kind == "large":
        scan = writer.attachment(writer.rng.randrange(1 << 20, 2 << 20), large=True)
        return writer.new_message(when, attachments=[scan]), 1
    files = [writer.attachment(attachment_size(writer.rng)) for _ in range(1 if writer.rng.random() < 0.85 else 2)]
    return writer.new_message(when, attachments=files), len(files)


def main() -> None:
    """`python bench/mailcorpus.py [N] [DIR]`: sizes by kind; with DIR, write the messages there to look at."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    started = time.perf_counter()
    corpus = build_corpus(count, 20261126)
    print(f"{count:,} messages, {corpus.total_bytes / 1e6:.1f} MB, {corpus.attachments} attachments, "
          f"{len(corpus.contacts)} contacts, built in {time.perf_counter() - started:.1f} s")
    print(dict(corpus.kinds))
    if len(sys.argv) > 2:
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for index, message in enumerate(corpus.messages):
            (out / f"{index:05d}.eml").write_bytes(message)
        print(f"written to {out}{os.sep}")


if __name__ == "__main__":
    main()
