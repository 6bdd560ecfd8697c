"""The `commhub` command: argument parsing and dispatch; each verb lives in commhub/commands/."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from commhub import __version__
from commhub.commands import agents, audit, contacts, db, gdpr, listen, mail, serve
from commhub.errors import CommhubError
from commhub.log import configure_logging
from commhub.settings import Settings, load_settings

Command = Callable[[Settings, argparse.Namespace], Any]


def build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $COMMHUB_CONFIG or config/commhub.toml)"
    parser = argparse.ArgumentParser(prog="commhub", description="Phone systems and mailboxes joined to customer files.")
    parser.add_argument("--config", type=Path, help=config_help)
    # Accepted after the verb too; SUPPRESS keeps a verb's missing --config from erasing one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help=config_help, default=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"commhub {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("serve", parents=[common], help="run the server")
    run.add_argument("--demo", action="store_true", help="load the demo data into an empty database and "
                                                        "print a demo agent token")
    run.add_argument("--host", help="override [server] host")
    run.add_argument("--port", type=int, help="override [server] port")
    run.set_defaults(command=serve.serve)

    database = verbs.add_parser("db", help="database maintenance").add_subparsers(dest="db_verb", required=True)
    database.add_parser("upgrade", parents=[common], help="apply pending migrations").set_defaults(
        command=db.db_upgrade)

    listening = verbs.add_parser("listen", parents=[common], help="terminal agent client: print screen-pops, "
                                                                  "type `note <text>` to write a call note")
    listening.add_argument("--url", help="commhub's base URL (default: [server] public_url or host:port)")
    listening.add_argument("--token", help="agent token (default: $COMMHUB_TOKEN)")
    listening.add_argument("--json", action="store_true", help="print each message as one JSON line")
    listening.add_argument("--after", type=int, help="replay kept messages after this seq first")
    listening.set_defaults(command=listen.listen)

    _contacts(verbs.add_parser("contacts", help="customer files").add_subparsers(dest="contacts_verb",
                                                                                  required=True), common)
    _agents(verbs.add_parser("agents", help="agents and tokens").add_subparsers(dest="agents_verb",
                                                                                 required=True), common)
    _mail(verbs.add_parser("mail", help="mailboxes and sending").add_subparsers(dest="mail_verb", required=True),
          common)
    privacy = verbs.add_parser("gdpr", help="export or erase a person's data (GDPR Art. 15, 17, 20)").add_subparsers(
        dest="gdpr_verb", required=True)
    exporting = privacy.add_parser("export", parents=[common], help="one zip with everything held about a contact")
    exporting.add_argument("id", type=int, help="the contact's id")
    exporting.add_argument("--out", help="the zip file to write (default: commhub-contact-ID.zip)")
    exporting.add_argument("--force", action="store_true", help="overwrite --out")
    exporting.set_defaults(command=gdpr.gdpr_export)
    erasing = privacy.add_parser("erase", parents=[common], help="erase a contact and what concerns only them")
    erasing.add_argument("id", type=int, help="the contact's id")
    erasing.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erasing.set_defaults(command=gdpr.gdpr_erase)
    privacy.add_parser("retention", parents=[common], help="delete what [retention] says is past its time, "
                                                           "now").set_defaults(command=gdpr.gdpr_retention)
    auditing = verbs.add_parser("audit", parents=[common], help="who read, changed, exported or erased which "
                                                                "file (newest first)")
    auditing.add_argument("--contact", type=int, help="events about this contact id")
    auditing.add_argument("--subject", help="KIND or KIND:ID, e.g. email:12 or organization")
    auditing.add_argument("--agent", help="events of this agent (name)")
    auditing.add_argument("--action", help="read, search, list, create, change, delete, export, erase, ...")
    auditing.add_argument("--since", help="from this date (YYYY-MM-DD, UTC)")
    auditing.add_argument("--until", help="before this date (YYYY-MM-DD, UTC)")
    auditing.add_argument("--limit", type=int, default=100)
    auditing.add_argument("--json", action="store_true", help="one JSON object per line")
    auditing.set_defaults(command=audit.audit_query)
    return parser


def _contacts(verbs: Any, common: argparse.ArgumentParser) -> None:
    importing = verbs.add_parser("import", parents=[common], help="import a CSV (Outlook, Google, Excel) or "
                                                                   "vCard file; re-importing updates")
    importing.add_argument("file")
    importing.add_argument("--quiet", action="store_true", help="do not list per-row warnings")
    importing.set_defaults(command=contacts.contacts_import)
    finding = verbs.add_parser("find", parents=[common], help="explain the caller-ID match of a number")
    finding.add_argument("number")
    finding.add_argument("--json", action="store_true", help="print the match as JSON")
    finding.add_argument("--language", default="de", choices=("de", "en"))
    finding.set_defaults(command=contacts.contacts_find)
    verbs.add_parser("duplicates", parents=[common], help="list likely duplicate contacts").set_defaults(
        command=contacts.contacts_duplicates)


def _agents(verbs: Any, common: argparse.ArgumentParser) -> None:
    adding = verbs.add_parser("add", parents=[common], help="add an agent and print a token once")
    adding.add_argument("name")
    adding.add_argument("--extension", action="append", help="extension, user id or direct number that "
                                                             "rings this agent (repeatable)")
    adding.add_argument("--role", choices=("agent", "admin"), default="agent")
    adding.add_argument("--email")
    adding.add_argument("--language", choices=("de", "en"))
    adding.set_defaults(command=agents.agents_add)
    token = verbs.add_parser("token", parents=[common], help="issue a new token for an agent")
    token.add_argument("name")
    token.add_argument("--label", default="cli")
    token.add_argument("--days", type=_positive, help="valid for this many days (default: [agents] token_days, "
                                                "or unlimited)")
    token.set_defaults(command=agents.agents_token)
    listing = verbs.add_parser("tokens", parents=[common], help="list an agent's tokens (never the secrets)")
    listing.add_argument("name")
    listing.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    listing.set_defaults(command=agents.agents_tokens)
    revoking = verbs.add_parser("revoke", parents=[common], help="revoke one token (--token ID) or all of an "
                                                                  "agent's tokens (--all)")
    revoking.add_argument("name")
    which = revoking.add_mutually_exclusive_group(required=True)
    which.add_argument("--token", type=int, help="the token's id, from `agents tokens`")
    which.add_argument("--all", action="store_true", help="every token of the agent, console sessions too")
    revoking.set_defaults(command=agents.agents_revoke)
    verbs.add_parser("list", parents=[common], help="list agents").set_defaults(command=agents.agents_list)


def _mail(verbs: Any, common: argparse.ArgumentParser) -> None:
    testing = verbs.add_parser("test", parents=[common], help="check a mailbox: connection, TLS, login, "
                                                                "folders, capabilities")
    testing.add_argument("mailbox", help="a [[mailboxes]] name")
    testing.set_defaults(command=mail.mail_test)
    syncing = verbs.add_parser("sync", parents=[common], help="archive what is new once, then exit")
    syncing.add_argument("mailbox", nargs="?", help="only this mailbox (default: all)")
    syncing.set_defaults(command=mail.mail_sync)
    sending = verbs.add_parser("send", parents=[common], help="send an email (filed in the history; queued "
                                                                "when the SMTP server is down)")
    sending.add_argument("--to", action="append", help="recipient (repeatable)")
    sending.add_argument("--cc", action="append", help="copy recipient (repeatable)")
    sending.add_argument("--bcc", action="append", help="blind copy recipient (repeatable)")
    sending.add_argument("--subject", required=True)
    sending.add_argument("--text", help="the message text (default: read from standard input)")
    sending.add_argument("--contact", type=int, help="also file it to this contact id")
    sending.set_defaults(command=mail.mail_send)
    for verb, helptext, command in (("unassigned", "mail no contact matched yet", mail.mail_unassigned),
                                    ("warnings", "oversized, unparsable or undeliverable mail", mail.mail_warnings)):
        listing = verbs.add_parser(verb, parents=[common], help=helptext)
        listing.add_argument("--limit", type=int, default=50)
        listing.set_defaults(command=command)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings.logging.level, settings.logging.format)
        result = args.command(settings, args)
        return asyncio.run(result) if inspect.iscoroutine(result) else int(result)
    except CommhubError as exc:
        print(f"commhub: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if overrides:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update=overrides)})
    return settings
