"""The container and cluster deployment files, checked against the code they run.

Docker and Kubernetes cannot run on the development machine, so this test is what keeps
docker-compose.yml, the Dockerfiles, .dockerignore and infra/k8s/ correct: every command is parsed by
the real CLI parser (`services.cli.build_parser`), every RHIZOME_* variable is fed to the real settings
loader (`experiments.settings.load_settings`) and must change the settings it returns, and the files are
checked for consistency with each other (dependencies, ports, probes, selectors, secrets, image tags).

Each check is a function returning a list of problems: the real files must give none, and a deliberately
broken copy of them must give the expected problem (the `test_a_broken_*_is_caught` tests), so no check
can pass vacuously.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import re
import shlex
import tomllib
from argparse import ArgumentParser, Namespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from experiments.settings import Settings, load_settings
from services.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "infra" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S_DIR = REPO / "infra" / "k8s"
INIT_SQL = REPO / "infra" / "postgres" / "init.sql"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: Never exists: `load_settings` must see the environment under test only, not a developer's rhizome.toml.
NO_CONFIG_FILE = REPO / "tests" / "unit" / "no-such-rhizome.toml"

#: The image built from infra/docker/Dockerfile, whatever registry it is pushed to.
OUR_IMAGE = "rhizome"
#: Compose service / k8s `app.kubernetes.io/component` -> the `rhizome` command it must run.
ROLES: dict[str, tuple[str, ...]] = {
    "migrate": ("db", "upgrade"),
    "ingest": ("ingest",),
    "worker": ("worker",),
    "console": ("console",),
    "simulator": ("simulate",),
}
#: Commands that serve HTTP -> (Settings field of the host, of the port, path of the health check).
SERVERS = {
    "ingest": ("ingest_host", "ingest_port", "/healthz"),
    "console": ("console_host", "console_port", "/_stcore/health"),
}
#: Environment variable names whose value must never be written in a deployment file.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.IGNORECASE)
#: A compose interpolation without a default: `${NAME}` or `${NAME:?message}` (`${NAME?message}`).
REQUIRED_VARIABLE = re.compile(r"^\$\{(?P<name>\w+)(?::?\?[^}]*)?\}$")
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


# --- shared helpers ------------------------------------------------------------------------------


def interpolate(value: Any) -> str:
    """Returns a compose value with `${VAR:-default}` as its default and any other variable as `<VAR>`."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        if m.group("op") in (":-", "-"):
            return m.group("arg")
        return f"<{name}>"

    return INTERPOLATION.sub(one, str(value))


@functools.cache
def is_setting(name: str) -> bool:
    """True when `load_settings` reads the variable: setting it changes (or is validated by) the result."""
    if not name.startswith("RHIZOME_"):
        return False
    baseline = load_settings({}, config_file=NO_CONFIG_FILE)
    try:
        probe = load_settings({name: "54321"}, config_file=NO_CONFIG_FILE)
    except ValueError:
        return True
    return probe != baseline


@functools.cache
def _parser() -> ArgumentParser:
    return build_parser()


def parse_cli(argv: list[str]) -> Namespace | str:
    """Returns what the real CLI parser makes of `rhizome ARGV`, or its error message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return _parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0:  # --help
            return Namespace(command=None)
        lines = err.getvalue().strip().splitlines()
        return lines[-1] if lines else "rejected by the parser"


def command_problems(where: str, argv: list[str], role: str | None) -> list[str]:
    parsed = parse_cli(argv)
    if isinstance(parsed, str):
        return [f"{where}: `rhizome {shlex.join(argv)}` is not a valid command ({parsed})"]
    expected = ROLES.get(role or "")
    if expected and tuple(argv[: len(expected)]) != expected:
        return [f"{where}: runs `rhizome {shlex.join(argv)}`, expected `rhizome {' '.join(expected)} ...`"]
    return []


def settings_problems(where: str, env: dict[str, str]) -> tuple[list[str], Settings | None]:
    """Checks a container's environment with the real settings loader; returns problems and the settings."""
    problems = [
        f"{where}: {name} is not a Rhizome setting"
        for name in env
        if name.startswith("RHIZOME_") and not is_setting(name)
    ]
    try:
        settings = load_settings(env, config_file=NO_CONFIG_FILE)
    except ValueError as exc:
        return [*problems, f"{where}: {exc}"], None
    if settings.local_broker:
        problems.append(f"{where}: RHIZOME_KAFKA_BOOTSTRAP unset, the container would look for a local broker")
    if settings.database_url.startswith("sqlite"):
        problems.append(f"{where}: RHIZOME_DATABASE_URL unset, each container would get its own SQLite file")
    if not settings.secret:
        problems.append(f"{where}: RHIZOME_SECRET unset, each container would generate its own key")
    return problems, settings


def image_problems(where: str, ref: str) -> list[str]:
    """An image reference must name a version: a digest, or a tag with a digit that is not `latest`."""
    if "@sha256:" in ref:
        return []
    _, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    if not tag:
        return [f"{where}: image {ref} has no tag (that is `latest`)"]
    if tag == "latest" or not re.search(r"\d", tag):
        return [f"{where}: image {ref} is not pinned to a version ({tag!r})"]
    return []


def image_name(ref: str) -> str:
    """The repository part of an image reference, without registry, tag or digest."""
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def image_tag(ref: str) -> str:
    last = ref.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def project_version() -> str:
    return str(PYPROJECT["project"]["version"])


# --- docker-compose.yml --------------------------------------------------------------------------


@functools.cache
def _yaml_documents(path: Path) -> list[Any]:
    """The file's YAML documents, parsed once per session (callers get deep copies)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(path.read_text(), Loader=loader))


def load_compose() -> dict[str, Any]:
    doc = copy.deepcopy(_yaml_documents(COMPOSE_FILE)[0])
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "docker-compose.yml: no services"
    return doc


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def runs_our_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else None
    return image_name(str(service.get("image", ""))) == OUR_IMAGE or dockerfile == "infra/docker/Dockerfile"


def our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(compose).items() if runs_our_image(s)}


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def parsed_command(service: dict[str, Any]) -> Namespace | None:
    parsed = parse_cli(compose_command(service))
    return None if isinstance(parsed, str) else parsed


def effective_settings(service: dict[str, Any]) -> Settings | None:
    env = {k: interpolate(v) for k, v in compose_env(service).items()}
    try:
        return load_settings(env, config_file=NO_CONFIG_FILE)
    except ValueError:
        return None


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(interpolate(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def healthcheck_text(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or ""
    return " ".join(test) if isinstance(test, list) else str(test)


def check_compose_commands(compose: dict[str, Any]) -> list[str]:
    """Every service of our image runs a command the CLI accepts, and each role runs the right one."""
    problems = []
    for role in ROLES:
        if role not in services(compose):
            problems.append(f"compose: no `{role}` service")
    for name, service in our_services(compose).items():
        if "entrypoint" in service:
            problems.append(f"compose {name}: overrides the image's `rhizome` entrypoint")
        command = compose_command(service)
        if not command:
            problems.append(f"compose {name}: no command (the image would only print --help)")
            continue
        problems += command_problems(f"compose {name}", command, name)
    return problems


def check_compose_depends_on(compose: dict[str, Any]) -> list[str]:
    """Every dependency names a service, with a condition that service can meet; roles wait for their needs."""
    problems = []
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services(compose).items():
        deps = service.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition", "service_started")
            target = services(compose).get(dep)
            if target is None:
                problems.append(f"compose {name}: depends on `{dep}`, which is not a service")
            elif condition not in conditions:
                problems.append(f"compose {name}: unknown condition {condition!r} on `{dep}`")
            elif condition == "service_healthy" and not healthcheck_text(target):
                problems.append(f"compose {name}: waits for `{dep}` to be healthy, but it has no healthcheck")
            elif condition == "service_completed_successfully" and str(target.get("restart", "no")) != "no":
                problems.append(f"compose {name}: waits for `{dep}` to complete, but `{dep}` restarts")
        waits_for_migrate = (deps.get("migrate") or {}).get("condition") == "service_completed_successfully"
        if name in our_services(compose) and name != "migrate" and not waits_for_migrate:
            problems.append(f"compose {name}: must depend on migrate (condition service_completed_successfully)")
        if name in ("ingest", "worker", "migrate"):
            needs = {"ingest": ("kafka", "postgres"), "worker": ("kafka", "postgres"), "migrate": ("postgres",)}
            for dep in needs[name]:
                if (deps.get(dep) or {}).get("condition") != "service_healthy":
                    problems.append(f"compose {name}: must wait for `{dep}` (condition service_healthy)")
    problems += _dependency_cycles(compose)
    return problems


def _dependency_cycles(compose: dict[str, Any]) -> list[str]:
    graph = {name: set(s.get("depends_on") or {}) for name, s in services(compose).items()}
    seen: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> Iterator[str]:
        if node in path:
            yield f"compose: dependency cycle {' -> '.join((*path, node))}"
            return
        if node in seen:
            return
        seen.add(node)
        for nxt in sorted(graph.get(node, ())):
            yield from visit(nxt, (*path, node))

    return [p for node in sorted(graph) for p in visit(node, ())]


def check_compose_settings(compose: dict[str, Any]) -> list[str]:
    """Our services' RHIZOME_* variables are settings the loader reads, and point at compose's Kafka and DB."""
    problems = []
    if "x-rhizome-env" not in compose:
        problems.append("compose: no shared `x-rhizome-env` block")
    for name, service in our_services(compose).items():
        env = {k: interpolate(v) for k, v in compose_env(service).items()}
        found, settings = settings_problems(f"compose {name}", env)
        problems += found
        if settings is None:
            continue
        kafka_host = settings.kafka_bootstrap.rsplit(":", 1)[0]
        if kafka_host not in services(compose):
            problems.append(
                f"compose {name}: RHIZOME_KAFKA_BOOTSTRAP names host `{kafka_host}`, which is not a service"
            )
        db_host = urlsplit(settings.database_url).hostname
        if db_host not in services(compose):
            problems.append(f"compose {name}: RHIZOME_DATABASE_URL names host `{db_host}`, which is not a service")
    return problems


def check_compose_servers(compose: dict[str, Any]) -> list[str]:
    """Ingest and console bind 0.0.0.0, publish the port they serve on and health-check that port."""
    problems = []
    for name, service in our_services(compose).items():
        args, settings = parsed_command(service), effective_settings(service)
        if args is None or settings is None or args.command not in SERVERS:
            continue
        host_field, port_field, path = SERVERS[args.command]
        host = args.host or getattr(settings, host_field)
        port = args.port or getattr(settings, port_field)
        if host not in ("0.0.0.0", "::"):
            problems.append(f"compose {name}: binds {host}, unreachable from outside its container (use 0.0.0.0)")
        if port not in container_ports(service):
            problems.append(f"compose {name}: serves on {port} but publishes {sorted(container_ports(service))}")
        if f":{port}{path}" not in healthcheck_text(service):
            problems.append(f"compose {name}: no healthcheck on {path} at port {port}")
    for name in ("kafka", "postgres"):
        if name in services(compose) and not healthcheck_text(services(compose)[name]):
            problems.append(f"compose {name}: no healthcheck")
    return problems


def check_compose_simulator(compose: dict[str, Any]) -> list[str]:
    """The simulator is optional (profile demo) and posts to the ingest service, which it waits for."""
    simulator = services(compose).get("simulator")
    if simulator is None:
        return ["compose: no simulator service"]
    problems = []
    if "demo" not in (simulator.get("profiles") or []):
        problems.append("compose simulator: not in the `demo` profile, so it would always run")
    args = parsed_command(simulator)
    url = urlsplit(getattr(args, "ingest", None) or "")
    target = services(compose).get(url.hostname or "")
    if target is None:
        return [*problems, f"compose simulator: --ingest {url.geturl()!r} does not name a service"]
    target_args, target_settings = parsed_command(target), effective_settings(target)
    if target_args is None or target_args.command != "ingest" or target_settings is None:
        return [*problems, f"compose simulator: --ingest names `{url.hostname}`, which does not run ingest"]
    if url.port != (target_args.port or target_settings.ingest_port):
        problems.append(f"compose simulator: --ingest port {url.port} is not the port `{url.hostname}` serves on")
    if ((simulator.get("depends_on") or {}).get(url.hostname) or {}).get("condition") != "service_healthy":
        problems.append(f"compose simulator: must wait for `{url.hostname}` to be healthy")
    return problems


def check_compose_worker_scaling(compose: dict[str, Any]) -> list[str]:
    """Workers can be scaled: no fixed name or host port, replicas within the topics' partitions."""
    worker = services(compose).get("worker")
    if worker is None:
        return ["compose: no worker service"]
    problems = []
    if "container_name" in worker:
        problems.append("compose worker: container_name prevents `--scale worker=N`")
    if worker.get("ports"):
        problems.append("compose worker: published ports prevent `--scale worker=N`")
    replicas = (worker.get("deploy") or {}).get("replicas", 1)
    settings = effective_settings(worker)
    if not isinstance(replicas, int) or replicas < 1:
        problems.append(f"compose worker: deploy.replicas {replicas!r} is not a positive number")
    elif settings is not None and replicas > settings.topic_partitions:
        problems.append(f"compose worker: {replicas} replicas but only {settings.topic_partitions} partitions")
    return problems


def check_compose_secrets(compose: dict[str, Any]) -> list[str]:
    """No secret value is written in the file: secrets come from variables without a default."""
    problems = []
    for name, service in services(compose).items():
        for key, value in compose_env(service).items():
            if SECRET_NAME.search(key) and not REQUIRED_VARIABLE.match(value):
                problems.append(f"compose {name}: {key} must be `${{VARIABLE:?message}}`, not a written value")
            for m in re.finditer(r"://[^/@:\s]+:(?P<password>[^@\s]*)@", value):
                if not REQUIRED_VARIABLE.match(m.group("password")):
                    problems.append(f"compose {name}: {key} has a written password; use `${{VARIABLE:?message}}`")
    for m in INTERPOLATION.finditer(json.dumps(compose)):
        if m.group("name") and SECRET_NAME.search(m.group("name")) and m.group("op") in (":-", "-"):
            problems.append(f"compose: ${{{m.group('name')}}} has a default value, i.e. a written secret")
    for name, service in our_services(compose).items():
        if not compose_env(service).get("RHIZOME_SECRET", "").startswith("${RHIZOME_SECRET:?"):
            problems.append(f"compose {name}: RHIZOME_SECRET must be required: `${{RHIZOME_SECRET:?message}}`")
    return problems


def check_compose_images(compose: dict[str, Any]) -> list[str]:
    """Every image is pinned; ours is built from infra/docker/Dockerfile and tagged with the project's version."""
    problems = []
    for name, service in services(compose).items():
        ref = interpolate(service.get("image", ""))
        if not ref:
            problems.append(f"compose {name}: no image")
            continue
        problems += image_problems(f"compose {name}", ref)
        if runs_our_image(service):
            build = service.get("build") or {}
            context = REPO / str(build.get("context", "."))
            if not (context / str(build.get("dockerfile", "Dockerfile"))).is_file():
                problems.append(f"compose {name}: builds from a Dockerfile that does not exist")
            if image_tag(ref) != project_version():
                problems.append(f"compose {name}: image {ref}, but the project's version is {project_version()}")
    return problems


def check_compose_kafka(compose: dict[str, Any]) -> list[str]:
    """Kafka: Apache Kafka 4.x (the local broker's version) in KRaft mode, advertising what our services use."""
    kafka = services(compose).get("kafka")
    if kafka is None:
        return ["compose: no kafka service"]
    problems = []
    ref = str(kafka.get("image", ""))
    pom = (REPO / "infra" / "kafka" / "pom.xml").read_text()
    local = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    if image_name(ref) != "kafka" or not ref.split(":", maxsplit=1)[0].endswith("apache/kafka"):
        problems.append(f"compose kafka: {ref} is not the Apache Kafka image (apache/kafka)")
    if not image_tag(ref).startswith("4."):
        problems.append(f"compose kafka: {ref} is not Kafka 4.x")
    if local and image_tag(ref) != local.group(1):
        problems.append(f"compose kafka: {ref}, but the local broker and the clients use Kafka {local.group(1)}")
    env = compose_env(kafka)
    if set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) != {"broker", "controller"}:
        problems.append("compose kafka: not a single KRaft node (KAFKA_PROCESS_ROLES broker,controller)")
    if any("ZOOKEEPER" in k for k in env):
        problems.append("compose kafka: ZooKeeper settings (Kafka 4 is KRaft only)")
    advertised = {a.split("://", 1)[1] for a in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if "://" in a}
    for name, service in our_services(compose).items():
        bootstrap = compose_env(service).get("RHIZOME_KAFKA_BOOTSTRAP", "")
        if bootstrap and bootstrap not in advertised:
            problems.append(f"compose {name}: RHIZOME_KAFKA_BOOTSTRAP {bootstrap} is not advertised by kafka")
    return problems


def check_compose_postgres(compose: dict[str, Any]) -> list[str]:
    """PostgreSQL: pinned image, a data volume, init.sql mounted and given the variables it reads."""
    postgres = services(compose).get("postgres")
    if postgres is None:
        return ["compose: no postgres service"]
    problems = []
    if image_name(str(postgres.get("image", ""))) != "postgres":
        problems.append(f"compose postgres: {postgres.get('image')} is not the postgres image")
    volumes = [
        str(v) if not isinstance(v, dict) else f"{v.get('source')}:{v.get('target')}"
        for v in postgres.get("volumes") or []
    ]
    if not any(v.split(":")[1].startswith("/var/lib/postgresql") for v in volumes if ":" in v):
        problems.append("compose postgres: no data volume")
    init = [v for v in volumes if ":/docker-entrypoint-initdb.d/" in v]
    if not init or (REPO / init[0].split(":")[0]).resolve() != INIT_SQL:
        problems.append("compose postgres: infra/postgres/init.sql is not mounted in /docker-entrypoint-initdb.d/")
    tag = re.match(r"(\d+)", image_tag(str(postgres.get("image", ""))))
    if not tag or int(tag.group(1)) < 15:
        problems.append(f"compose postgres: {postgres.get('image')} is older than 15 (init.sql needs psql's \\getenv)")
    init_sql = INIT_SQL.read_text()
    for variable in re.findall(r"\\getenv\s+\w+\s+(\w+)", init_sql):
        if variable not in compose_env(postgres):
            problems.append(f"compose postgres: init.sql reads {variable}, which the service does not set")
    # Our services log in as the role init.sql creates, to the database it creates, with the password it was given.
    role = re.search(r"CREATE ROLE (\w+)", init_sql)
    database = re.search(r"CREATE DATABASE (\w+)", init_sql)
    given = {m for v in compose_env(postgres).values() for m in re.findall(r"\$\{(\w+)", v)}
    for name, service in our_services(compose).items():
        raw = compose_env(service).get("RHIZOME_DATABASE_URL", "")
        url = urlsplit(interpolate(raw))
        if url.hostname != "postgres":
            continue
        if not role or url.username != role.group(1) or not database or url.path != f"/{database.group(1)}":
            problems.append(f"compose {name}: RHIZOME_DATABASE_URL is not the role and database init.sql creates")
        password = re.search(r":\$\{(\w+)[^}]*\}@", raw)
        if not password or password.group(1) not in given:
            problems.append(f"compose {name}: the database password is not the variable postgres gives init.sql")
    return problems


def check_compose_volumes(compose: dict[str, Any]) -> list[str]:
    """Named volumes are declared; bind-mounted files exist in the repository."""
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, service in services(compose).items():
        for volume in service.get("volumes") or []:
            source = str(volume.get("source")) if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/")):
                if not (REPO / source).exists():
                    problems.append(f"compose {name}: mounts {source}, which does not exist")
            elif source not in declared:
                problems.append(f"compose {name}: volume `{source}` is not declared under `volumes:`")
    return problems


COMPOSE_CHECKS: list[Callable[[dict[str, Any]], list[str]]] = [
    check_compose_commands,
    check_compose_depends_on,
    check_compose_settings,
    check_compose_servers,
    check_compose_simulator,
    check_compose_worker_scaling,
    check_compose_secrets,
    check_compose_images,
    check_compose_kafka,
    check_compose_postgres,
    check_compose_volumes,
]


# --- Dockerfiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's arguments, or None for the shell form."""
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            return None
        return [str(p) for p in parsed] if isinstance(parsed, list) else None

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """`--from=build a b` -> ({"from": "build"}, ["a", "b"])."""
        words = self.exec_form() or shlex.split(self.value)
        flags = {}
        while words and words[0].startswith("--"):
            key, _, val = words.pop(0)[2:].partition("=")
            flags[key] = val
        return flags, words


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (the default `\\` escape)."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, value = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip(), start))
    if pending:
        raise ValueError("Dockerfile ends inside a continued line")
    return instructions


def dockerfiles() -> list[Path]:
    found = [*REPO.glob("Dockerfile*"), *(REPO / "infra").rglob("Dockerfile*")]
    return sorted(p for p in found if p.is_file())


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def env_names(ins: Instruction) -> list[str]:
    if "=" not in ins.value.split(" ", 1)[0]:
        return [ins.value.split(" ", 1)[0]]
    return [word.split("=", 1)[0] for word in shlex.split(ins.value) if "=" in word]


def check_dockerfile_base(path: Path, instructions: list[Instruction]) -> list[str]:
    """Every FROM is pinned (or an earlier stage); ours is the project's Python, slim."""
    problems, names = [], set()
    where = path.relative_to(REPO)
    all_stages = stages(instructions)
    if not all_stages:
        return [f"{where}: no FROM"]
    for stage in all_stages:
        _, args = stage[0].flags_and_args()
        ref = args[0] if args else ""
        if ref not in names and ref != "scratch":
            problems += image_problems(f"{where}:{stage[0].line}", ref)
        if len(args) >= 3 and args[1].upper() == "AS":
            names.add(args[2])
    if path == DOCKERFILE:
        python = re.search(r"(\d+)\.(\d+)", str(PYPROJECT["project"]["requires-python"]))
        _, args = all_stages[-1][0].flags_and_args()
        final = args[0] if args else ""
        wanted = f"{python.group(1)}.{python.group(2)}." if python else "?"
        if image_name(final) != "python" or not image_tag(final).startswith(wanted) or "slim" not in final:
            problems.append(f"{where}: final stage {final} is not python:{wanted}x-slim (requires-python)")
    return problems


def check_dockerfile_user(path: Path, instructions: list[Instruction]) -> list[str]:
    """The final stage runs as a non-root user."""
    users = [ins for ins in stages(instructions)[-1] if ins.keyword == "USER"]
    where = path.relative_to(REPO)
    if not users:
        return [f"{where}: the final stage has no USER, so it runs as root"]
    user = users[-1].value.split(":")[0]
    if user in ("root", "0"):
        return [f"{where}:{users[-1].line}: USER {users[-1].value} is root"]
    return []


def check_dockerfile_entrypoint(path: Path, instructions: list[Instruction]) -> list[str]:
    """ENTRYPOINT (exec form) is the project's `rhizome` console script; CMD, if any, is a valid command."""
    where = path.relative_to(REPO)
    final = stages(instructions)[-1]
    entry = [ins for ins in final if ins.keyword == "ENTRYPOINT"]
    cmds = [ins for ins in final if ins.keyword == "CMD"]
    if not entry and not cmds:
        return [f"{where}: neither ENTRYPOINT nor CMD"]
    if path != DOCKERFILE:
        return [f"{where}:{i.line}: {i.keyword} in shell form" for i in entry + cmds if i.exec_form() is None]
    problems = []
    scripts = PYPROJECT["project"].get("scripts", {})
    if not entry or entry[-1].exec_form() != ["rhizome"] or "rhizome" not in scripts:
        problems.append(f'{where}: ENTRYPOINT must be ["rhizome"], the console script of pyproject.toml')
    if cmds:
        argv = cmds[-1].exec_form()
        if argv is None:
            problems.append(f"{where}:{cmds[-1].line}: CMD in shell form")
        else:
            problems += command_problems(f"{where}:{cmds[-1].line} CMD", argv, None)
    return problems


def check_dockerfile_install(path: Path, instructions: list[Instruction]) -> list[str]:
    """pip installs with constraints.txt, never the dev extra; the wheel's missing files are copied in."""
    if path != DOCKERFILE:
        return []
    where = path.relative_to(REPO)
    problems = []
    installs = [ins for ins in instructions if ins.keyword == "RUN" and "pip install" in ins.value]
    if not installs:
        problems.append(f"{where}: no `pip install`")
    for ins in installs:
        for part in re.split(r"&&|;", ins.value):
            if "pip install" not in part:
                continue
            if not re.search(r"(-c|--constraint)[ =]\S*constraints\.txt", part):
                problems.append(f"{where}:{ins.line}: pip install without -c constraints.txt")
            if re.search(r"\[[^\]]*dev[^\]]*\]", part):
                problems.append(f"{where}:{ins.line}: pip install of the dev extra")
    # `rhizome simulate` reads services.simulator.demo.EXAMPLES: if that directory is not inside an installed
    # package, the image must copy it to the same place beside the installed packages.
    relative = examples_outside_packages()
    if relative is not None:
        final = stages(instructions)[-1]
        copies = [ins.flags_and_args()[1] for ins in final if ins.keyword == "COPY"]
        wanted = f"{site_packages(final)}/{relative}"
        if not any(len(a) >= 2 and a[-1].rstrip("/") == wanted for a in copies):
            problems.append(f"{where}: {relative}/ is not package data; copy it to {wanted}")
    return problems


def examples_outside_packages() -> Path | None:
    """The demo specs' directory (relative to the repository) when the wheel does not ship it, else None."""
    from services.simulator import demo

    relative = demo.EXAMPLES.relative_to(REPO)
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return None if any(re.fullmatch(p.replace("*", ".*"), relative.parts[0]) for p in packages) else relative


def site_packages(stage: list[Instruction]) -> str:
    """The site-packages of the virtualenv whose bin/ leads ENV PATH, for the project's Python version."""
    paths = [
        w.split("=", 1)[1] for i in stage if i.keyword == "ENV" for w in shlex.split(i.value) if w.startswith("PATH=")
    ]
    venv = paths[-1].split(":")[0].removesuffix("/bin") if paths else "<no virtualenv on ENV PATH>"
    python = re.search(r"(\d+)\.(\d+)", str(PYPROJECT["project"]["requires-python"]))
    version = f"{python.group(1)}.{python.group(2)}" if python else "?"
    return f"{venv}/lib/python{version}/site-packages"


def check_dockerfile_native(path: Path, instructions: list[Instruction]) -> list[str]:
    """Our image compiles the processor and its native core (tools/build_native.py) in a build stage, then
    checks with the interpreter of the virtualenv the final stage copies and runs that the processor loads
    compiled there, with the core (the build itself is tested in tests/unit/test_native.py and
    tests/unit/test_core.py)."""
    if path != DOCKERFILE:
        return []
    where = path.relative_to(REPO)
    final = stages(instructions)[-1]
    venv = site_packages(final).split("/lib/python")[0]
    copied = [ins.flags_and_args() for ins in final if ins.keyword == "COPY"]
    if not any("from" in flags and args[:1] == [venv] for flags, args in copied):
        return [f"{where}: the final stage does not copy the virtualenv {venv} from a build stage"]
    wanted = {
        "compiles the processor with tools/build_native.py": re.compile(r"/bin/python3? \S*tools/build_native\.py\b"),
        f"checks that {venv}/bin/python loads it compiled": re.compile(
            rf"{re.escape(venv)}/bin/python3? -c .*\bstreams\.processor\b.*\bassert\b.*\bcompiled\("
        ),
        f"checks that {venv}/bin/python loads the native core": re.compile(
            rf"{re.escape(venv)}/bin/python3? -c .*\bassert \w+\.core\(\d+\) is not None"
        ),
    }
    parts = [
        part
        for stage in stages(instructions)[:-1]
        for ins in stage
        if ins.keyword == "RUN"
        for part in ins.value.split("&&")  # not at `;`, which the Python of `-c` may hold
    ]
    return [f"{where}: no build stage {what}" for what, regex in wanted.items() if not any(map(regex.search, parts))]


def check_dockerfile_copies(
    path: Path, instructions: list[Instruction], ignore: list[tuple[bool, re.Pattern[str]]] | None = None
) -> list[str]:
    """Every COPY source exists and is in the build context (not excluded by .dockerignore)."""
    where = path.relative_to(REPO)
    problems = []
    if ignore is None:
        ignore = parse_dockerignore(DOCKERIGNORE.read_text()) if DOCKERIGNORE.exists() else []
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        flags, args = ins.flags_and_args()
        if "from" in flags:
            continue
        for source in args[:-1]:
            matches = list(REPO.glob(source.rstrip("/"))) if any(c in source for c in "*?[") else [REPO / source]
            if not any(m.exists() for m in matches):
                problems.append(f"{where}:{ins.line}: {ins.keyword} {source}: no such file")
            elif any(dockerignored(ignore, m.relative_to(REPO).as_posix()) for m in matches):
                problems.append(f"{where}:{ins.line}: {ins.keyword} {source}: excluded by .dockerignore")
    return problems


def check_dockerfile_env(path: Path, instructions: list[Instruction]) -> list[str]:
    """ENV sets only RHIZOME_* names the settings loader reads, and no secret."""
    problems = []
    for ins in instructions:
        if ins.keyword != "ENV":
            continue
        for name in env_names(ins):
            if name.startswith("RHIZOME_") and not is_setting(name):
                problems.append(f"{path.relative_to(REPO)}:{ins.line}: {name} is not a Rhizome setting")
            if SECRET_NAME.search(name):
                problems.append(f"{path.relative_to(REPO)}:{ins.line}: {name} written into the image")
    return problems


DOCKERFILE_CHECKS: list[Callable[[Path, list[Instruction]], list[str]]] = [
    check_dockerfile_base,
    check_dockerfile_user,
    check_dockerfile_entrypoint,
    check_dockerfile_install,
    check_dockerfile_native,
    check_dockerfile_copies,
    check_dockerfile_env,
]


def parse_dockerignore(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, pattern) pairs; `*` stays within a path segment, `**` crosses them."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        rules.append((negated, re.compile(regex)))
    return rules


def dockerignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether the path (or a directory above it) is excluded; the last matching rule wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negated
    return excluded


#: What must never reach the Docker daemon: secrets, local state, virtualenvs, build and test output.
NEVER_IN_CONTEXT = [
    ".env",
    ".git/config",
    ".rhizome/secret",
    ".venv/bin/python",
    "rhizome.toml",
    "infra/kafka/target/dependency/kafka_2.13-4.4.0.jar",
    "tests/unit/test_deploy_files.py",
    "services/__pycache__/cli.cpython-311.pyc",
]


def check_dockerignore(rules: list[tuple[bool, re.Pattern[str]]]) -> list[str]:
    return [
        f".dockerignore: {p} would be sent to the Docker daemon"
        for p in NEVER_IN_CONTEXT
        if not dockerignored(rules, p)
    ]


# --- infra/k8s -----------------------------------------------------------------------------------

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
COMPONENT = "app.kubernetes.io/component"


def load_k8s() -> dict[str, list[dict[str, Any]]]:
    """Every YAML file of infra/k8s/, as its documents."""
    files = {}
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        docs = [d for d in copy.deepcopy(_yaml_documents(path)) if d is not None]
        files[path.name] = docs
    return files


def objects(files: dict[str, list[dict[str, Any]]], *, templates: bool = False) -> list[dict[str, Any]]:
    return [
        doc
        for name, docs in files.items()
        for doc in docs
        if doc.get("kind") != "Kustomization" and (templates or ".template." not in name)
    ]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {}) or {}


def our_containers(files: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, workload, container) for each container that runs our image."""
    for obj in objects(files):
        if obj.get("kind") not in WORKLOADS:
            continue
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if image_name(str(container.get("image", ""))) == OUR_IMAGE:
                yield f"k8s {obj['kind']}/{obj['metadata']['name']}", obj, container


def config_maps(files: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data", {}) or {} for o in objects(files) if o.get("kind") == "ConfigMap"}


def secret_templates(files: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: {**(o.get("data") or {}), **(o.get("stringData") or {})}
        for o in objects(files, templates=True)
        if o.get("kind") == "Secret"
    }


def container_env(
    files: dict[str, list[dict[str, Any]]], container: dict[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """The container's environment (a secret's value as `<secret>`) and the problems found building it."""
    env, problems = {}, []
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name not in config_maps(files):
                problems.append(f"envFrom names ConfigMap {name}, which is not defined")
            env.update({str(k): str(v) for k, v in config_maps(files).get(name, {}).items()})
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            env.update({k: "<secret>" for k in secret_templates(files).get(name, {})})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] not in secret_templates(files).get(ref["name"], {}):
                problems.append(f"{item['name']} from Secret {ref['name']}/{ref['key']}, not in a secret template")
            env[item["name"]] = "<secret>"
        else:
            env[item["name"]] = "<from the cluster>"
    return env, problems


def check_k8s_commands(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every container of our image runs a command the CLI accepts; each component its own command."""
    problems, components = [], set()
    for where, obj, container in our_containers(files):
        component = pod_labels(obj).get(COMPONENT)
        components.add(component)
        if "command" in container:
            problems.append(f"{where}: `command` replaces the image's `rhizome` entrypoint; use `args`")
        problems += command_problems(where, [str(a) for a in container.get("args", [])], component)
    for role in ("migrate", "ingest", "worker", "console"):
        if role not in components:
            problems.append(f"k8s: no workload with {COMPONENT}: {role}")
    return problems


def check_k8s_settings(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Settings: known names only, and enough of them (external Kafka, PostgreSQL, one shared secret)."""
    problems = []
    for name, data in config_maps(files).items():
        problems += [f"k8s ConfigMap/{name}: {k} is not a Rhizome setting" for k in data if not is_setting(k)]
    for name, data in secret_templates(files).items():
        problems += [f"k8s Secret/{name}: {k} is not a Rhizome setting" for k in data if not is_setting(k)]
    for where, _, container in our_containers(files):
        env, found = container_env(files, container)
        problems += [f"{where}: {p}" for p in found]
        problems += settings_problems(where, env)[0]
    return problems


def check_k8s_secrets(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Secrets come from a Secret (secretKeyRef) whose template in the repository holds no value."""
    problems = []
    for name, data in config_maps(files).items():
        problems += [
            f"k8s ConfigMap/{name}: {k} is secret, it belongs in a Secret" for k in data if SECRET_NAME.search(k)
        ]
        problems += [
            f"k8s ConfigMap/{name}: {k} holds a password"
            for k, v in data.items()
            if re.search(r"://[^/@]+:[^@]+@", str(v))
        ]
    for o in objects(files, templates=True):
        if o.get("kind") == "Secret":
            name = o["metadata"]["name"]
            data = {**(o.get("data") or {}), **(o.get("stringData") or {})}
            problems += [f"k8s Secret/{name}: {k} has a value in the repository" for k, v in data.items() if v]
    for file_name, docs in files.items():
        if ".template." not in file_name and any(d.get("kind") == "Secret" for d in docs):
            problems.append(f"k8s {file_name}: a Secret outside a *.template.yaml file")
    for where, _, container in our_containers(files):
        for item in container.get("env", []):
            if "value" in item and (SECRET_NAME.search(item["name"]) or item["name"] == "RHIZOME_DATABASE_URL"):
                problems.append(f"{where}: {item['name']} written in the manifest; use a secretKeyRef")
    return problems


def check_k8s_servers(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Ingest and console bind 0.0.0.0 on the port the container declares, probe it, and a Service targets it."""
    problems = []
    for where, obj, container in our_containers(files):
        args = parse_cli([str(a) for a in container.get("args", [])])
        env, _ = container_env(files, container)
        try:
            settings = load_settings(env, config_file=NO_CONFIG_FILE)
        except ValueError:
            continue
        if isinstance(args, str) or args.command not in SERVERS:
            continue
        host_field, port_field, path = SERVERS[args.command]
        host, port = args.host or getattr(settings, host_field), args.port or getattr(settings, port_field)
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if host not in ("0.0.0.0", "::"):
            problems.append(f"{where}: binds {host}, unreachable from outside the pod (use 0.0.0.0)")
        if port not in named.values():
            problems.append(f"{where}: serves on {port} but declares ports {sorted(named.values())}")
        probe = (container.get("readinessProbe") or {}).get("httpGet") or {}
        if probe.get("path") != path or named.get(probe.get("port"), probe.get("port")) != port:
            problems.append(f"{where}: no readinessProbe on {path} at port {port}")
        for svc in objects(files):
            selector = svc.get("spec", {}).get("selector") or {}
            if svc.get("kind") != "Service" or not selector or not selector.items() <= pod_labels(obj).items():
                continue
            for sp in svc["spec"].get("ports", []):
                target = sp.get("targetPort", sp.get("port"))
                if named.get(target, target) != port:
                    problems.append(f"k8s Service/{svc['metadata']['name']}: targetPort {target} is not port {port}")
        if not any(
            s.get("kind") == "Service" and (s.get("spec", {}).get("selector") or {}).items() <= pod_labels(obj).items()
            for s in objects(files)
        ):
            problems.append(f"{where}: no Service selects its pods")
    return problems


def check_k8s_selectors(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Selectors select: Deployments their own pods, Services and PodDisruptionBudgets some workload's pods."""
    problems = []
    workloads = [o for o in objects(files) if o.get("kind") in WORKLOADS]
    for obj in objects(files):
        where = f"k8s {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            match = obj["spec"].get("selector", {}).get("matchLabels", {})
            if not match or not match.items() <= pod_labels(obj).items():
                problems.append(f"{where}: selector {match} does not match its pod labels")
        if obj.get("kind") in ("Service", "PodDisruptionBudget"):
            spec = obj.get("spec", {})
            match = (
                spec.get("selector", {})
                if obj["kind"] == "Service"
                else spec.get("selector", {}).get("matchLabels", {})
            )
            if not match or not any(match.items() <= pod_labels(w).items() for w in workloads):
                problems.append(f"{where}: selector {match} matches no workload's pods")
    return problems


def check_k8s_workers(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Several workers, at most one per partition, protected by a PodDisruptionBudget."""
    workers = [o for o in objects(files) if o.get("kind") == "Deployment" and pod_labels(o).get(COMPONENT) == "worker"]
    if len(workers) != 1:
        return [f"k8s: {len(workers)} worker Deployments, expected one (one consumer group)"]
    worker = workers[0]
    problems = []
    replicas = worker["spec"].get("replicas", 1)
    partitions = max(
        (int(d["RHIZOME_TOPIC_PARTITIONS"]) for d in config_maps(files).values() if "RHIZOME_TOPIC_PARTITIONS" in d),
        default=load_settings({}, config_file=NO_CONFIG_FILE).topic_partitions,
    )
    if not 2 <= replicas <= partitions:
        problems.append(f"k8s worker: {replicas} replicas, expected 2 to {partitions} (RHIZOME_TOPIC_PARTITIONS)")
    pdbs = [
        o
        for o in objects(files)
        if o.get("kind") == "PodDisruptionBudget"
        and o["spec"].get("selector", {}).get("matchLabels", {}).items() <= pod_labels(worker).items()
    ]
    if not pdbs:
        problems.append("k8s worker: no PodDisruptionBudget selects the worker pods")
    return problems


def check_k8s_security(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Our containers run as a non-root uid without privilege escalation."""
    problems = []
    for where, obj, container in our_containers(files):
        context = {**(pod_spec(obj).get("securityContext") or {}), **(container.get("securityContext") or {})}
        if context.get("runAsNonRoot") is not True or context.get("runAsUser", 0) == 0:
            problems.append(f"{where}: must set runAsNonRoot: true and a non-zero runAsUser")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: must set allowPrivilegeEscalation: false")
    return problems


def check_k8s_images(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every image pinned; ours at the project's version, also in the kustomization's image override."""
    problems = []
    for obj in objects(files):
        if obj.get("kind") not in WORKLOADS:
            continue
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            where = f"k8s {obj['kind']}/{obj['metadata']['name']}"
            ref = str(container.get("image", ""))
            problems += image_problems(where, ref)
            if image_name(ref) == OUR_IMAGE and image_tag(ref) != project_version():
                problems.append(f"{where}: image {ref}, but the project's version is {project_version()}")
    for docs in files.values():
        for doc in docs:
            for image in doc.get("images", []) if doc.get("kind") == "Kustomization" else []:
                tag = str(image.get("newTag", ""))
                problems += image_problems("k8s kustomization", f"{image.get('newName', image['name'])}:{tag}")
                if image["name"] == OUR_IMAGE and tag != project_version():
                    problems.append(
                        f"k8s kustomization: newTag {tag}, but the project's version is {project_version()}"
                    )
    return problems


def check_k8s_layout(files: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One namespace for everything; the kustomization lists every manifest but the secret template."""
    problems = []
    namespaces = [o["metadata"]["name"] for o in objects(files) if o.get("kind") == "Namespace"]
    if len(namespaces) != 1:
        return [f"k8s: {len(namespaces)} Namespace objects, expected one"]
    for o in objects(files, templates=True):
        if o.get("kind") != "Namespace" and o.get("metadata", {}).get("namespace") != namespaces[0]:
            problems.append(f"k8s {o.get('kind')}/{o['metadata'].get('name')}: not in namespace {namespaces[0]}")
    kustomizations = [d for docs in files.values() for d in docs if d.get("kind") == "Kustomization"]
    if len(kustomizations) != 1:
        return [*problems, "k8s: expected one kustomization.yaml"]
    listed = set(kustomizations[0].get("resources", []))
    manifests = {name for name, docs in files.items() if not any(d.get("kind") == "Kustomization" for d in docs)}
    for name in sorted(manifests - listed):
        if ".template." not in name:
            problems.append(f"k8s kustomization: {name} is not listed in resources")
    for name in sorted(listed - manifests):
        problems.append(f"k8s kustomization: lists {name}, which is not a manifest here")
    for name in sorted(n for n in listed if ".template." in n):
        problems.append(f"k8s kustomization: lists the template {name}")
    if kustomizations[0].get("namespace", namespaces[0]) != namespaces[0]:
        problems.append("k8s kustomization: a namespace other than the Namespace object's")
    return problems


K8S_CHECKS: list[Callable[[dict[str, list[dict[str, Any]]]], list[str]]] = [
    check_k8s_commands,
    check_k8s_settings,
    check_k8s_secrets,
    check_k8s_servers,
    check_k8s_selectors,
    check_k8s_workers,
    check_k8s_security,
    check_k8s_images,
    check_k8s_layout,
]


# --- the real files --------------------------------------------------------------------------------


@pytest.mark.parametrize("check", COMPOSE_CHECKS, ids=lambda c: c.__name__)
def test_compose(check: Callable[[dict[str, Any]], list[str]]) -> None:
    assert check(load_compose()) == []


@pytest.mark.parametrize("check", DOCKERFILE_CHECKS, ids=lambda c: c.__name__)
def test_dockerfiles(check: Callable[[Path, list[Instruction]], list[str]]) -> None:
    assert DOCKERFILE in dockerfiles()
    for path in dockerfiles():
        assert check(path, parse_dockerfile(path.read_text())) == []


def test_dockerignore_keeps_secrets_and_state_out_of_the_build_context() -> None:
    assert check_dockerignore(parse_dockerignore(DOCKERIGNORE.read_text())) == []


@pytest.mark.parametrize("check", K8S_CHECKS, ids=lambda c: c.__name__)
def test_k8s(check: Callable[[dict[str, list[dict[str, Any]]]], list[str]]) -> None:
    assert check(load_k8s()) == []


def undocumented_variables(compose_text: str, doc_text: str) -> list[str]:
    """The variables docker-compose.yml requires (`${NAME:?...}`) that docs/deployment.md does not name."""
    required = sorted(set(re.findall(r"\$\{(\w+):?\?", compose_text)))
    if not required:
        return ["docker-compose.yml requires no variable: where would the secrets come from?"]
    return [
        f"docs/deployment.md: `{v}` not documented, docker-compose.yml requires it"
        for v in required
        if f"`{v}`" not in doc_text
    ]


def doc_command_problems(doc_text: str) -> list[str]:
    """The `rhizome` commands of the guide's `docker compose run|exec` and `kubectl exec` lines, parsed by the CLI."""
    problems, found = [], 0
    for line in re.sub(r"\\\n\s*", " ", doc_text).splitlines():
        shell = line.split("#", 1)[0].split("|")[-1].strip()
        words = shlex.split(shell) if shell.startswith(("docker compose", "kubectl")) else []
        if words[:3] in (["docker", "compose", "run"], ["docker", "compose", "exec"]):
            rest = words[3:]
            while rest and rest[0].startswith("-"):
                rest = rest[2:] if rest[0] in ("-v", "-e", "--volume", "--env", "-w", "--name", "-u") else rest[1:]
            argv = rest[1:]  # after the service
            if words[2] == "exec" and argv[:1] != ["rhizome"]:
                problems.append(f"docs/deployment.md: `{shell}` does not run rhizome")
                continue
            argv = argv[1:] if words[2] == "exec" else argv
        elif words[:1] == ["kubectl"] and "exec" in words:
            argv = words[words.index("--") + 1 :] if "--" in words else []
            if argv[:1] != ["rhizome"]:
                problems.append(f"docs/deployment.md: `{shell}` does not run rhizome")
                continue
            argv = argv[1:]
        else:
            continue
        found += 1
        problems += command_problems(f"docs/deployment.md `{shell}`", argv, None)
    return problems if found else ["docs/deployment.md: no `docker compose run|exec` command to check"]


def test_the_guide_commands_exist_in_the_cli() -> None:
    doc = (REPO / "docs" / "deployment.md").read_text()
    assert doc_command_problems(doc) == []
    assert doc_command_problems(doc + "\ndocker compose run --rm -T migrate pilot aply x.yaml\n")
    assert doc_command_problems(doc + "\nkubectl -n rhizome exec deploy/rhizome-worker -- rhizome results\n")
    assert doc_command_problems("no commands")


def test_the_variables_compose_requires_are_documented() -> None:
    doc = (REPO / "docs" / "deployment.md").read_text()
    assert undocumented_variables(COMPOSE_FILE.read_text(), doc) == []
    assert undocumented_variables(COMPOSE_FILE.read_text() + "\nx: ${RHIZOME_NEW:?set it}\n", doc)
    assert undocumented_variables("services: {}", doc)


# --- each check can fail -----------------------------------------------------------------------


def assert_caught(
    check: Callable[[Any], list[str]], original: Any, mutate: Callable[[Any], Any], expected: str
) -> None:
    """The check passes the original and reports `expected` (a regex) for a mutated copy of it."""
    assert check(original) == []
    broken = copy.deepcopy(original)
    mutate(broken)
    problems = check(broken)
    assert any(re.search(expected, p) for p in problems), problems


def params(rows: list[Any]) -> list[Any]:
    """`(name, check, mutation, expected problem)` rows as pytest parameters named after the row."""
    return [pytest.param(*row[1:], id=row[0]) if type(row) is tuple else row for row in rows]


def _set(path: str, value: Any) -> Callable[[Any], None]:
    """A mutation that sets a dotted path (list indices as numbers, `[a.b]` for a key with dots) to `value`;
    `...` deletes it."""

    def mutate(doc: Any) -> None:
        segments = [quoted or plain for quoted, plain in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path)]
        *parents, last = [int(p) if p.isdigit() else p for p in segments]
        for p in parents:
            doc = doc[p]
        if value is ...:
            del doc[last]
        else:
            doc[last] = value

    return mutate


def _k8s_object(kind: str, name: str) -> Callable[[dict[str, list[dict[str, Any]]]], dict[str, Any]]:
    def find(files: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return next(o for o in objects(files, templates=True) if o["kind"] == kind and o["metadata"]["name"] == name)

    return find


def _k8s(obj: str, path: str, value: Any) -> Callable[[dict[str, list[dict[str, Any]]]], None]:
    """A mutation of the object `Kind/name`; paths may start with `pod.` (the pod spec) or `container.` (its first)."""
    kind, name = obj.split("/")
    path = re.sub(r"^pod\.", "spec.template.spec.", re.sub(r"^container\.", "pod.containers.0.", path))
    return lambda files: _set(path, value)(_k8s_object(kind, name)(files))


def _compose_env(service: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        env = dict(compose["services"][service]["environment"])
        if value is ...:
            del env[key]
        else:
            env[key] = value
        compose["services"][service]["environment"] = env

    return mutate


COMPOSE_BREAKS = [
    ("unknown command", check_compose_commands, _set("services.worker.command", ["wrker"]), "not a valid command"),
    ("unknown option", check_compose_commands, _set("services.ingest.command", ["ingest", "--hots", "x"]), "--hots"),
    ("wrong role", check_compose_commands, _set("services.console.command", ["worker"]), "expected `rhizome console"),
    ("missing role", check_compose_commands, _set("services.migrate", ...), "no `migrate` service"),
    ("unknown dependency", check_compose_depends_on, _set("services.ingest.depends_on.kafak", {}), "not a service"),
    (
        "healthy without healthcheck",
        check_compose_depends_on,
        _set("services.kafka.healthcheck", ...),
        "has no healthcheck",
    ),
    ("no migrate wait", check_compose_depends_on, _set("services.console.depends_on.migrate", ...), "migrate"),
    (
        "cycle",
        check_compose_depends_on,
        _set("services.postgres.depends_on", {"migrate": {"condition": "service_started"}}),
        "cycle",
    ),
    ("unknown setting", check_compose_settings, _compose_env("worker", "RHIZOME_WORKERS", "3"), "RHIZOME_WORKERS"),
    ("bad setting", check_compose_settings, _compose_env("worker", "RHIZOME_TOPIC_PARTITIONS", "eight"), "integer"),
    ("no bootstrap", check_compose_settings, _compose_env("ingest", "RHIZOME_KAFKA_BOOTSTRAP", ...), "local broker"),
    (
        "db not a service",
        check_compose_settings,
        _compose_env("ingest", "RHIZOME_DATABASE_URL", "postgresql://db/x"),
        "db",
    ),
    ("no secret", check_compose_settings, _compose_env("console", "RHIZOME_SECRET", ...), "own key"),
    ("no shared env", check_compose_settings, _set("x-rhizome-env", ...), "x-rhizome-env"),
    ("loopback bind", check_compose_servers, _compose_env("ingest", "RHIZOME_INGEST_HOST", ...), "0.0.0.0"),
    ("port not published", check_compose_servers, _set("services.console.ports", ["8502:8502"]), "publishes"),
    ("no health", check_compose_servers, _set("services.ingest.healthcheck", ...), "/healthz"),
    ("wrong health port", check_compose_servers, _compose_env("console", "RHIZOME_CONSOLE_PORT", "9000"), "9000"),
    ("simulator always on", check_compose_simulator, _set("services.simulator.profiles", ...), "demo"),
    (
        "simulator elsewhere",
        check_compose_simulator,
        _set("services.simulator.command", ["simulate", "--ingest", "http://console:8501"]),
        "does not run ingest",
    ),
    ("worker named", check_compose_worker_scaling, _set("services.worker.container_name", "w"), "container_name"),
    ("worker replicas", check_compose_worker_scaling, _set("services.worker.deploy.replicas", 99), "partitions"),
    ("literal secret", check_compose_secrets, _compose_env("worker", "RHIZOME_SECRET", "hunter2"), "RHIZOME_SECRET"),
    (
        "defaulted secret",
        check_compose_secrets,
        _compose_env("ingest", "RHIZOME_SECRET", "${RHIZOME_SECRET:-abc}"),
        "default value",
    ),
    (
        "literal db password",
        check_compose_secrets,
        _compose_env("ingest", "RHIZOME_DATABASE_URL", "postgresql://rhizome:pw@postgres/rhizome"),
        "written password",
    ),
    ("latest", check_compose_images, _set("services.postgres.image", "postgres:latest"), "not pinned"),
    ("untagged", check_compose_images, _set("services.kafka.image", "apache/kafka"), "no tag"),
    ("our tag", check_compose_images, _set("services.worker.image", "rhizome:9.9.9"), "project's version"),
    ("old kafka", check_compose_kafka, _set("services.kafka.image", "apache/kafka:3.9.1"), "4.x"),
    ("zookeeper", check_compose_kafka, _compose_env("kafka", "KAFKA_PROCESS_ROLES", "broker"), "KRaft"),
    (
        "not advertised",
        check_compose_kafka,
        _compose_env("worker", "RHIZOME_KAFKA_BOOTSTRAP", "kafka:9999"),
        "advertised",
    ),
    (
        "no init.sql",
        check_compose_postgres,
        _set("services.postgres.volumes", ["postgres-data:/var/lib/postgresql/data"]),
        "init.sql",
    ),
    ("init var", check_compose_postgres, _compose_env("postgres", "RHIZOME_DB_PASSWORD", ...), "RHIZOME_DB_PASSWORD"),
    ("old postgres", check_compose_postgres, _set("services.postgres.image", "postgres:14.18"), "older than 15"),
    (
        "other database",
        check_compose_postgres,
        _compose_env("worker", "RHIZOME_DATABASE_URL", "postgresql://app:${RHIZOME_DB_PASSWORD}@postgres/app"),
        "role and database",
    ),
    (
        "other password",
        check_compose_postgres,
        _compose_env("worker", "RHIZOME_DATABASE_URL", "postgresql://rhizome:${DB_PW:?x}@postgres:5432/rhizome"),
        "password",
    ),
    ("undeclared volume", check_compose_volumes, _set("volumes", {}), "not declared"),
    (
        "missing file",
        check_compose_volumes,
        _set("services.postgres.volumes.1", "./infra/postgres/nope.sql:/docker-entrypoint-initdb.d/x.sql"),
        "does not exist",
    ),
]


@pytest.mark.parametrize(("check", "mutate", "expected"), params(COMPOSE_BREAKS))
def test_a_broken_compose_file_is_caught(check: Any, mutate: Any, expected: str) -> None:
    assert_caught(check, load_compose(), mutate, expected)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, f"the Dockerfile no longer contains {old!r}"
        return text.replace(old, new)

    return edit


DOCKERFILE_BREAKS: list[Any] = [
    (
        "latest base",
        check_dockerfile_base,
        _replace("FROM python:3.11.13-slim-bookworm\n", "FROM python:latest\n"),
        "pinned",
    ),
    (
        "wrong python",
        check_dockerfile_base,
        _replace("FROM python:3.11.13-slim-bookworm\n", "FROM python:3.12.9-slim\n"),
        "requires-python",
    ),
    ("root", check_dockerfile_user, _replace("USER 10001:10001", "USER root"), "root"),
    ("no user", check_dockerfile_user, _replace("USER 10001:10001", ""), "no USER"),
    (
        "shell entrypoint",
        check_dockerfile_entrypoint,
        _replace('ENTRYPOINT ["rhizome"]', "ENTRYPOINT rhizome"),
        "ENTRYPOINT",
    ),
    ("bad cmd", check_dockerfile_entrypoint, _replace('CMD ["--help"]', 'CMD ["serve"]'), "not a valid command"),
    ("no constraints", check_dockerfile_install, _replace("-c constraints.txt ", ""), "constraints"),
    (
        "dev extra",
        check_dockerfile_install,
        _replace("/wheels/rhizome-*.whl", "'/wheels/rhizome-*.whl[dev]'"),
        "dev extra",
    ),
    pytest.param(
        check_dockerfile_install,
        _replace("lib/python3.11/site-packages/examples", "lib/python3.12/site-packages/examples"),
        "examples",
        id="no examples",
        marks=pytest.mark.skipif(examples_outside_packages() is None, reason="the wheel ships the demo specs"),
    ),
    (
        "processor not compiled",
        check_dockerfile_native,
        _replace(" && PYTHONPATH=/src /opt/mypyc/bin/python tools/build_native.py", ""),
        "compiles the processor",
    ),
    (
        "compiled build not checked",
        check_dockerfile_native,
        _replace("/opt/rhizome/bin/python -c", "/opt/mypyc/bin/python -c"),
        "loads it compiled",
    ),
    (
        "native core not checked",
        check_dockerfile_native,
        _replace("; assert n.core(1) is not None, 'no native core'", ""),
        "loads the native core",
    ),
    ("missing source", check_dockerfile_copies, _replace("COPY ui ./ui", "COPY uix ./ui"), "no such file"),
    ("unknown env", check_dockerfile_env, _replace("RHIZOME_STATE_DIR=", "RHIZOME_STATEDIR="), "RHIZOME_STATEDIR"),
    ("secret env", check_dockerfile_env, _replace("PYTHONUNBUFFERED=1", "RHIZOME_SECRET=x"), "written into"),
]


@pytest.mark.parametrize(("check", "edit", "expected"), params(DOCKERFILE_BREAKS))
def test_a_broken_dockerfile_is_caught(check: Any, edit: Any, expected: str) -> None:
    text = DOCKERFILE.read_text()
    assert check(DOCKERFILE, parse_dockerfile(text)) == []
    problems = check(DOCKERFILE, parse_dockerfile(edit(text)))
    assert any(re.search(expected, p) for p in problems), problems


def test_a_broken_dockerignore_is_caught() -> None:
    text = DOCKERIGNORE.read_text()
    assert check_dockerignore(parse_dockerignore(text + "\n!.env\n"))
    assert check_dockerignore(parse_dockerignore(text.replace("!ui/", "!ui/\n!.rhizome/")))
    without_ui = parse_dockerignore(text.replace("!ui/\n", ""))
    problems = check_dockerfile_copies(DOCKERFILE, parse_dockerfile(DOCKERFILE.read_text()), without_ui)
    assert any("COPY ui: excluded by .dockerignore" in p for p in problems), problems


def test_the_dockerfile_parser() -> None:
    parsed = parse_dockerfile('# c\nFROM a:1 AS b\nRUN x \\\n  # inside\n  && y\nENTRYPOINT ["r"]\n')
    assert [(i.keyword, i.value, i.line) for i in parsed] == [
        ("FROM", "a:1 AS b", 2),
        ("RUN", "x && y", 3),
        ("ENTRYPOINT", '["r"]', 6),
    ]
    assert parsed[2].exec_form() == ["r"] and parsed[1].exec_form() is None
    with pytest.raises(ValueError, match="continued"):
        parse_dockerfile("RUN a \\\n")


K8S_BREAKS = [
    (
        "unknown command",
        check_k8s_commands,
        _k8s("Deployment/rhizome-worker", "container.args", ["wrk"]),
        "not a valid",
    ),
    ("wrong role", check_k8s_commands, _k8s("Job/rhizome-migrate", "container.args", ["worker"]), "db upgrade"),
    ("command", check_k8s_commands, _k8s("Deployment/rhizome-console", "container.command", ["sh"]), "entrypoint"),
    ("unknown setting", check_k8s_settings, _k8s("ConfigMap/rhizome", "data.RHIZOME_WORKERS", "3"), "RHIZOME_WORKERS"),
    ("bad setting", check_k8s_settings, _k8s("ConfigMap/rhizome", "data.RHIZOME_INGEST_PORT", "http"), "integer"),
    ("unknown secret key", check_k8s_settings, _k8s("Secret/rhizome", "stringData.RHIZOME_DB_PASSWORD", ""), "DB_PASS"),
    (
        "no bootstrap",
        check_k8s_settings,
        _k8s("ConfigMap/rhizome", "data.RHIZOME_KAFKA_BOOTSTRAP", ...),
        "local broker",
    ),
    ("no secret", check_k8s_settings, _k8s("Deployment/rhizome-ingest", "container.env.1", ...), "own key"),
    (
        "missing key",
        check_k8s_settings,
        _k8s("Deployment/rhizome-ingest", "container.env.1.valueFrom.secretKeyRef.key", "S"),
        "secret template",
    ),
    (
        "filled template",
        check_k8s_secrets,
        _k8s("Secret/rhizome", "stringData.RHIZOME_SECRET", "hunter2"),
        "has a value",
    ),
    (
        "secret in configmap",
        check_k8s_secrets,
        _k8s("ConfigMap/rhizome", "data.RHIZOME_SECRET", "x"),
        "belongs in a Secret",
    ),
    (
        "literal env",
        check_k8s_secrets,
        _k8s("Deployment/rhizome-worker", "container.env.1", {"name": "RHIZOME_SECRET", "value": "x"}),
        "secretKeyRef",
    ),
    ("loopback", check_k8s_servers, _k8s("ConfigMap/rhizome", "data.RHIZOME_INGEST_HOST", "127.0.0.1"), "0.0.0.0"),
    ("port", check_k8s_servers, _k8s("ConfigMap/rhizome", "data.RHIZOME_CONSOLE_PORT", "8502"), "8502"),
    (
        "probe",
        check_k8s_servers,
        _k8s("Deployment/rhizome-ingest", "container.readinessProbe.httpGet.path", "/"),
        "readinessProbe",
    ),
    ("target", check_k8s_servers, _k8s("Service/rhizome-console", "spec.ports.0.targetPort", 80), "targetPort"),
    (
        "selector",
        check_k8s_selectors,
        _k8s("Service/rhizome-ingest", f"spec.selector.[{COMPONENT}]", "ingets"),
        "matches no",
    ),
    (
        "own pods",
        check_k8s_selectors,
        _k8s("Deployment/rhizome-worker", f"spec.selector.matchLabels.[{COMPONENT}]", "w"),
        "pod labels",
    ),
    ("one worker", check_k8s_workers, _k8s("Deployment/rhizome-worker", "spec.replicas", 1), "replicas"),
    ("too many", check_k8s_workers, _k8s("Deployment/rhizome-worker", "spec.replicas", 64), "RHIZOME_TOPIC_PARTITIONS"),
    (
        "no pdb",
        check_k8s_workers,
        _k8s("PodDisruptionBudget/rhizome-worker", f"spec.selector.matchLabels.[{COMPONENT}]", "x"),
        "PodDisruptionBudget",
    ),
    ("root", check_k8s_security, _k8s("Deployment/rhizome-ingest", "pod.securityContext.runAsUser", 0), "runAsUser"),
    ("escalation", check_k8s_security, _k8s("Job/rhizome-migrate", "container.securityContext", {}), "Escalation"),
    ("latest", check_k8s_images, _k8s("Deployment/rhizome-console", "container.image", "rhizome:latest"), "pinned"),
    ("old tag", check_k8s_images, _k8s("Job/rhizome-migrate", "container.image", "rhizome:0.0.1"), "version"),
    (
        "namespace",
        check_k8s_layout,
        _k8s("Service/rhizome-ingest", "metadata.namespace", "default"),
        "not in namespace",
    ),
    (
        "unlisted",
        check_k8s_layout,
        lambda files: files["kustomization.yaml"][0]["resources"].remove("worker.yaml"),
        "worker.yaml",
    ),
    (
        "template listed",
        check_k8s_layout,
        lambda files: files["kustomization.yaml"][0]["resources"].append("secret.template.yaml"),
        "template",
    ),
]


@pytest.mark.parametrize(("check", "mutate", "expected"), params(K8S_BREAKS))
def test_a_broken_k8s_manifest_is_caught(check: Any, mutate: Any, expected: str) -> None:
    assert_caught(check, load_k8s(), mutate, expected)


def test_the_ingest_service_serves_the_health_path_the_files_check() -> None:
    """compose and k8s check /healthz: the ingest app must still declare that route."""
    path = SERVERS["ingest"][2]
    source = (REPO / "services" / "ingest" / "app.py").read_text()
    assert re.search(rf"@app\.get\(\s*[\"']{re.escape(path)}[\"']", source), f"services/ingest/app.py: no GET {path}"


def test_is_setting_asks_the_settings_loader() -> None:
    assert is_setting("RHIZOME_SECRET") and is_setting("RHIZOME_TOPIC_PARTITIONS")
    assert not is_setting("RHIZOME_NO_SUCH_SETTING") and not is_setting("KAFKA_NODE_ID")
