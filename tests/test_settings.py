"""Configuration: file, environment overrides, env: secrets, and errors an admin can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from commhub.errors import ConfigError
from commhub.settings import load_settings

EXAMPLE = Path(__file__).parents[1] / "config" / "commhub.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "commhub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_is_valid() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.server.port == 8080 and settings.phone.default_region == "DE"


def test_the_examples_commented_mail_sections_are_valid_when_switched_on(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    mail = text[text.index("# [[mailboxes]]"):]
    switched_on = "\n".join(line.removeprefix("# ") for line in mail.splitlines()
                            if line.startswith("# ") and ("=" in line or line.startswith("# [")))
    switched_on = switched_on.replace('auth = "login"', 'auth = "xoauth2"', 1)  # the mailbox's, whose token lines follow
    settings = load_settings(write(tmp_path, switched_on), environ={
        "VERTRIEB_IMAP_PASSWORD": "p", "VERTRIEB_TOKEN": "t", "SMTP_PASSWORD": "p"})
    [mailbox] = settings.mailboxes
    assert (mailbox.auth, mailbox.folders, mailbox.imap_port) == ("xoauth2", ["INBOX", "Gesendete Objekte"], 993)
    assert settings.smtp.sent_mailbox == "vertrieb" and settings.smtp.smtp_port == 587


def test_starts_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.database.url == "sqlite+aiosqlite:///var/commhub.db" and settings.source_file is None


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 8080\n[[mailboxes]]\nname = "sales"\nhost = "imap.example"\n'
                           'username = "u"\n')
    settings = load_settings(path, environ={"COMMHUB_SERVER__PORT": "9001", "COMMHUB_PHONE__DEFAULT_REGION": "at",
                                            "COMMHUB_MAILBOXES__0__FOLDERS": '["INBOX", "Gesendet"]',
                                            "COMMHUB_MAILBOXES__0__PASSWORD": "1234"})
    assert settings.server.port == 9001 and settings.phone.default_region == "AT"
    assert settings.mailboxes[0].folders == ["INBOX", "Gesendet"]
    assert settings.mailboxes[0].password.get_secret_value() == "1234"  # a numeric password stays text


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 7000\n")
    assert load_settings(None, environ={"COMMHUB_CONFIG": str(path)}).server.port == 7000


def test_env_secret_is_resolved(tmp_path: Path) -> None:
    path = write(tmp_path, '[[sources]]\nname = "sipgate"\nadapter = "sipgate"\nsecret = "env:SIPGATE_TOKEN"\n')
    settings = load_settings(path, environ={"SIPGATE_TOKEN": "s3cret"})
    assert settings.sources[0].secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("text", "environ", "expected"), [
    ("[server]\nport = 70000\n", {}, "commhub.toml: server.port: Input should be less than or equal to 65535"),
    ("[server]\nprot = 1\n", {}, "commhub.toml: server.prot: unknown key"),
    ("[phone]\ndefault_region = 'XX'\n", {}, "phone.default_region: 'XX' is not an ISO 3166 region"),
    ('[[sources]]\nname = "a"\nadapter = "x"\nsecret = "env:MISSING"\n', {},
     "commhub.toml: sources.0.secret: environment variable MISSING is not set"),
    ('[[sources]]\nname = "a"\nadapter = "x"\n[[sources]]\nname = "a"\nadapter = "y"\n', {},
     "sources: Value error, names must be unique, repeated: a"),
    ("[server\n", {}, "commhub.toml: invalid TOML"),
    ("", {"COMMHUB_SERVER__PORT": "many"}, "COMMHUB_SERVER__PORT: server.port: Input should be a valid integer"),
    ("", {"COMMHUB_DATABASE__URL": "mysql://x"}, "COMMHUB_DATABASE__URL: database.url: must start with"),
    ('[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\ntls = "maybe"\n', {},
     "mailboxes.0.tls: Input should be 'ssl', 'starttls' or 'none'"),
    ('[[mailboxes]]\nname = "m"\nhost = "imap.example.de"\nusername = "u"\ntls = "none"\n', {},
     'mailboxes.0: tls = "none" is only allowed for a server on this machine'),
    ('[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n', {},
     'mailboxes.0: auth = "xoauth2" needs oauth_token or oauth_token_command'),
    ('[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\nafter_archive = "archive"\n', {},
     "mailboxes.0.after_archive: String should match pattern"),
    ('[[mailboxes]]\nname = "m"\nhost = "h"\nusername = "u"\nfolders = ["INBOX", "INBOX"]\n', {},
     "mailboxes.0.folders: folders must be unique"),
    ('[smtp]\nhost = "smtp.example.de"\nsent_mailbox = "vertrieb"\n', {},
     "smtp.sent_mailbox: no [[mailboxes]] entry named 'vertrieb'"),
])
def test_errors_name_file_key_and_problem(tmp_path: Path, text: str, environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=environ)
    assert expected.replace("Value error, ", "") in caught.value.message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere.toml: configuration file not found"):
        load_settings(tmp_path / "nowhere.toml", environ={})
