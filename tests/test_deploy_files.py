"""The container files agree with each other and with commhub.

Docker is not run here: what would break `docker compose up` (a node that cannot read its
settings, a database URL that misses the database service, a port that does not line up, a file
the build context leaves out, a health check that never fails) is checked from the files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from commhub.cli import build_parser
from commhub.settings import Settings, load_settings

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
README = ROOT / "README.md"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
SECTION = "## Deploy with docker compose"
# What an admin puts in .env; every other variable must work from its default.
DOT_ENV = {"PBX_WEBHOOK_SECRET": "9c1f0e7a5b3d4e2f"}


# --- docker compose --------------------------------------------------------------------------

VARIABLE = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


class MissingVariable(Exception):
    pass


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose's own `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `$$`."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return VARIABLE.sub(lambda match: _substitute(match, env), node)
    return node


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group(0) == "$$":
        return "$"
    name = match.group("name") or match.group("bare")
    op, arg = match.group("op") or "", match.group("arg") or ""
    value = env.get(name)
    unset = value is None or (op.startswith(":") and value == "")
    if op.endswith("-") and unset:
        return arg
    if op.endswith("?") and unset:
        raise MissingVariable(f"{name}: {arg}")
    return value or ""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # PyYAML resolves the `<<` merge keys the file shares its node settings with, as compose does.
    return interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), DOT_ENV)


def nodes(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if "build" in service}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, tuple[Path, bool]]:
    """Bind mounts as {container path: (host path, read-only)}."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if source.startswith((".", "/")):
            found[target] = ((ROOT / source).resolve(), "ro" in mode)
    return found


def node_settings(service: dict[str, Any]) -> Settings:
    """What `commhub serve` in this container would run with: its environment and mounted config."""
    env = environment(service)
    config = env.get("COMMHUB_CONFIG")
    if config is None:
        return load_settings(None, env)
    host_path, read_only = mounts(service)[config]
    assert read_only, f"{config}: a node must not be able to change its own configuration"
    return load_settings(host_path, env)


def published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) for each `ports` entry in the short form."""
    pairs = []
    for entry in service.get("ports", []):
        *_, host, container = str(entry).split(":")
        pairs.append((int(host), int(container.split("/")[0])))
    return pairs


def seconds(duration: str) -> float:
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?", duration)
    assert parts and duration, f"not a compose duration: {duration!r}"
    h, m, s, ms = (int(part or 0) for part in parts.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def test_compose_runs_several_nodes_on_postgres(compose: dict[str, Any]) -> None:
    assert len(nodes(compose)) >= 2
    assert compose["services"]["postgres"]["image"].startswith("postgres:")


def test_every_node_starts_with_valid_settings_on_the_shared_database(compose: dict[str, Any]) -> None:
    postgres = environment(compose["services"]["postgres"])
    for name, service in nodes(compose).items():
        settings = node_settings(service)
        url = make_url(settings.database.url)
        assert url.drivername == "postgresql+asyncpg", name
        assert (url.host, url.port or 5432) == ("postgres", 5432), name
        assert url.username == postgres["POSTGRES_USER"], name
        assert url.password == postgres["POSTGRES_PASSWORD"], name
        assert url.database == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"]), name
        assert settings.server.host == "0.0.0.0", name
        assert settings.server.tls_cert is None, name  # the health check speaks plain HTTP


def test_the_webhook_secret_comes_from_the_environment(compose: dict[str, Any]) -> None:
    for service in nodes(compose).values():
        secrets = {source.name: source.secret for source in node_settings(service).sources}
        assert secrets, "a deployment nobody can call is no deployment"
        for name, secret in secrets.items():
            assert secret is not None and secret.get_secret_value() in DOT_ENV.values(), name


def test_the_webhook_secret_has_no_default() -> None:
    with pytest.raises(MissingVariable, match="PBX_WEBHOOK_SECRET"):
        interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")), {})


def test_nodes_have_their_own_names_and_ports(compose: dict[str, Any]) -> None:
    names = [node_settings(service).cluster.node_name for service in nodes(compose).values()]
    assert None not in names and len(set(names)) == len(names)
    ports = [host for service in nodes(compose).values() for host, _ in published(service)]
    assert len(ports) == len(nodes(compose)) and len(set(ports)) == len(ports)


def test_nodes_wait_for_a_healthy_postgres_that_keeps_its_data(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volumes = [volume.split(":") for volume in postgres["volumes"]]
    assert any(source in compose["volumes"] and target == "/var/lib/postgresql/data" for source, target, *_ in volumes)
    for name, service in nodes(compose).items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert service["restart"] in ("always", "unless-stopped", "on-failure"), name


def test_a_drain_ends_before_docker_kills_the_node(compose: dict[str, Any]) -> None:
    for name, service in nodes(compose).items():
        grace = seconds(service["stop_grace_period"])
        assert grace > node_settings(service).server.shutdown_seconds + 5, name


def test_the_mounted_configuration_exists() -> None:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for service in raw["services"].values():
        for target, (host_path, _) in mounts(service).items():
            assert host_path.is_file(), f"{target} would be mounted from a missing {host_path}"


# --- Dockerfile --------------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def only(keyword: str) -> str:
    values = [arguments for instruction, arguments in instructions() if instruction == keyword]
    assert len(values) == 1, f"expected one {keyword}, found {values}"
    return values[0]


def healthcheck_command() -> list[str]:
    _, _, command = only("HEALTHCHECK").partition("CMD ")
    return json.loads(command)


def test_the_image_is_slim_python_and_serves_as_a_user() -> None:
    assert only("FROM") == "python:3.11-slim"
    assert only("USER") not in ("root", "0")
    assert json.loads(only("CMD")) == ["commhub", "serve"]
    assert only("STOPSIGNAL") == "SIGTERM"


def test_the_exposed_port_is_the_one_compose_publishes_and_commhub_listens_on(compose: dict[str, Any]) -> None:
    exposed = int(only("EXPOSE"))
    for name, service in nodes(compose).items():
        assert {container for _, container in published(service)} == {exposed}, name
        assert node_settings(service).server.port == exposed, name
    assert f"'{exposed}'" in only("HEALTHCHECK") or f":{exposed}/" in only("HEALTHCHECK")


class Health(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        Health.paths.append(self.path)
        self.send_response(Health.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_healthcheck(port: int) -> int:
    command = healthcheck_command()
    assert command[0] == "python", "the slim image has no curl"
    env = {**os.environ, "COMMHUB_SERVER__PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=30).returncode


def test_the_health_check_asks_healthz_and_fails_when_it_does(health_server: int) -> None:
    Health.paths.clear()
    Health.status = 200
    assert run_healthcheck(health_server) == 0
    assert Health.paths == ["/healthz"]
    Health.status = 503
    assert run_healthcheck(health_server) == 1  # Docker reads 1 as unhealthy; other codes are reserved


def test_the_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert run_healthcheck(free) == 1


def copied_sources() -> list[str]:
    sources = []
    for instruction, arguments in instructions():
        words = shlex.split(arguments)
        if instruction in ("COPY", "ADD") and not any(word.startswith("--from") for word in words):
            sources += [word for word in words[:-1] if not word.startswith("--")]
    return sources


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (re-include, pattern): Go's filepath.Match, plus `**` for any depth."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, glob_regex(os.path.normpath(line.removeprefix("!").strip().lstrip("/")))))
    return rules


def glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern):
        parts.append({"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token) or re.escape(token))
    return re.compile("".join(parts))


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching line wins, and a line matching a directory covers its content."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for keep, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            result = not keep
    return result


def test_the_context_leaves_out_local_state_and_secrets() -> None:
    rules = ignore_rules()
    for path in (".git/HEAD", ".venv/bin/python", "var/commhub.db", ".env", "config/commhub.toml",
                 "commhub/__pycache__/app.cpython-311.pyc", "commhub/web/__pycache__/x.pyc"):
        assert excluded(path, rules), path
    assert not excluded("commhub/app.py", rules)


def test_everything_the_build_copies_exists_and_reaches_the_context() -> None:
    rules = ignore_rules()
    sources = copied_sources()
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                                and "__pycache__" not in p.parts]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not excluded(relative, rules), f"{relative} is left out by .dockerignore"


def test_the_build_copies_what_pyproject_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied = {source.rstrip("/") for source in copied_sources()}
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, package
    assert re.search(r"\bpip install\b", " ".join(a for i, a in instructions() if i == "RUN"))


# --- README and docs ---------------------------------------------------------------------------

def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    assert SECTION + "\n" in text, f"README has no {SECTION!r} section"
    return text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]


def compose_commands(text: str) -> list[list[str]]:
    """Each `docker compose …` in the text, up to the end of its code span, a comment or a pipe."""
    return [shlex.split(command)[2:] for command in re.findall(r"docker compose [^`\n#|<>;&]*", text)]


# Verbs whose words after the options are all service names; exec and run take one, then a command.
MANY_SERVICES = {"up", "down", "logs", "restart", "stop", "start", "ps", "build", "pull", "rm", "kill"}


def named_services(words: list[str]) -> tuple[list[str], list[str] | None]:
    """The services a `docker compose` command names, and the command it runs inside one."""
    verb, rest = words[0], list(words[1:])
    if verb in ("exec", "run"):
        while rest and rest[0].startswith("-"):
            rest.pop(0)
        return rest[:1], rest[1:]
    if verb in MANY_SERVICES:
        return [word for word in rest if not word.startswith("-")], None
    return [], None


@pytest.mark.parametrize("document", ["README", "docs/deployment.md"])
def test_documented_commands_name_real_services_and_verbs(compose: dict[str, Any], document: str) -> None:
    text = readme_section() if document == "README" else DEPLOYMENT.read_text(encoding="utf-8")
    commands = compose_commands(text)
    assert ["up", "-d", "--build"] in commands
    ran = []
    for words in commands:
        services, inside = named_services(words)
        for service in services:
            assert service in compose["services"], f"{document}: docker compose {' '.join(words)}"
        if inside and inside[0] == "commhub":
            build_parser().parse_args(inside[1:])  # argparse exits on a verb or option commhub lacks
            ran.append(inside[1:3])
    if document == "README":
        assert ["agents", "add"] in ran


def test_the_readme_says_which_default_password_to_change() -> None:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    password = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    default = re.search(r"\$\{POSTGRES_PASSWORD:-([^}]*)\}", password)
    assert default and f"`{default.group(1)}`" in readme_section()


def test_the_readme_points_at_the_published_ports(compose: dict[str, Any]) -> None:
    ports = {host for service in nodes(compose).values() for host, _ in published(service)}
    named = {int(port) for port in re.findall(r"localhost:(\d+)", readme_section())}
    assert named and named <= ports
    for path in ("/healthz", "/readyz", "/metrics", "/hooks/"):
        assert path in readme_section(), path


def test_every_compose_variable_is_explained_with_its_setting(compose: dict[str, Any]) -> None:
    rows = [line for line in DEPLOYMENT.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    for service in compose["services"].values():
        for variable in environment(service):
            row = next((row for row in rows if f"`{variable}`" in row), None)
            assert row is not None, f"docs/deployment.md: no table row for {variable}"
            if variable.startswith("COMMHUB_") and "__" in variable:
                key = ".".join(part.lower() for part in variable.removeprefix("COMMHUB_").split("__"))
                assert f"`{key}`" in row, f"docs/deployment.md: {variable} row should name `{key}`"
