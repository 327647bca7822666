"""The container and cluster deployment files, checked by the tools made for them (neither Docker nor
Kubernetes runs on the development machine):

- the Kubernetes manifests against Kubernetes' own OpenAPI schemas, strictly (no unknown field), with
  kubernetes-validate, which bundles them (offline);
- docker-compose.yml against the Compose Specification's JSON schema, with check-jsonschema's copy of it;
- the Dockerfile with hadolint;
- every `rhizome ...` command line in them with the real CLI parser (`services.cli.build_parser`).

Each validator also gets a broken copy, to show it catches what it is there for.
"""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
K8S = ROOT / "infra" / "k8s"
#: The oldest Kubernetes release the manifests are meant for (one still supported by its project).
KUBERNETES = "1.33.0"
#: The image every Rhizome process runs (infra/docker/Dockerfile), whose entrypoint is `rhizome`.
IMAGE = "rhizome"
TOOLS = Path(sys.executable).parent


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (file name, object) for every Kubernetes object of infra/k8s/ (Kustomize's file apart)."""
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None and doc.get("kind") != "Kustomization":
                yield path.name, doc


def kubernetes_problems(doc: dict[str, Any]) -> list[str]:
    """Returns why the object does not validate against Kubernetes' schema (strict), if it does not."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {where}: {exc.message}"]
    return []


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOLS / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOLS / "hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def rhizome_commands() -> list[tuple[str, list[str]]]:
    """Returns (where, argv) for every `rhizome` command line of the compose file, the Dockerfile's
    default and the manifests (those of containers running our image, whose entrypoint is `rhizome`)."""
    commands = []
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        if str(service.get("image", "")).startswith(f"{IMAGE}:"):
            commands.append((f"docker-compose.yml {name}", list(service["command"])))
    # ENTRYPOINT and CMD in their JSON form (hadolint asks for it), which YAML reads too.
    dockerfile = dict(
        line.split(" ", 1) for line in DOCKERFILE.read_text().splitlines() if line.startswith(("ENTRYPOINT ", "CMD "))
    )
    assert yaml.safe_load(dockerfile["ENTRYPOINT"]) == [IMAGE]
    commands.append(("Dockerfile CMD", yaml.safe_load(dockerfile["CMD"])))
    for file, doc in manifests():
        for container in pod_containers(doc):
            if container["image"].split(":")[0] == IMAGE:
                assert "command" not in container, f"{file}: the image's entrypoint is `rhizome`"
                commands.append((f"{file} {container['name']}", list(container.get("args", []))))
    return commands


def cli_problem(argv: list[str]) -> str | None:
    """Returns the CLI parser's complaint about `argv` (None when it parses, or only asks for help)."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return errors.getvalue().strip().splitlines()[-1]
    return None


# --- Kubernetes ------------------------------------------------------------------------------------


def test_the_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    objects = list(manifests())
    assert {doc["kind"] for _, doc in objects} >= {"Deployment", "Job", "ConfigMap", "Secret", "Service"}
    assert [problem for _, doc in objects for problem in kubernetes_problems(doc)] == []


def test_a_broken_manifest_is_caught_by_the_kubernetes_schema() -> None:
    [worker] = [
        copy.deepcopy(doc) for file, doc in manifests() if file == "worker.yaml" and doc["kind"] == "Deployment"
    ]
    container = worker["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["path"] = 8710  # a number where a string belongs
    container["readinessProbe"]["periodSecond"] = 10  # a misspelt field
    problems = kubernetes_problems(worker)
    assert problems and problems[0].startswith("Deployment/rhizome-worker: spec.template.spec.containers.0."), problems


def test_kustomize_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.template.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_the_worker_is_probed_on_its_health_endpoint() -> None:
    [worker] = [doc for file, doc in manifests() if file == "worker.yaml" and doc["kind"] == "Deployment"]
    [container] = pod_containers(worker)
    env = {e["name"]: e.get("value") for e in container["env"]}
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["health"]
    assert env["RHIZOME_WORKER_HEALTH_PORT"] == str(port) and env["RHIZOME_WORKER_HEALTH_HOST"] == "0.0.0.0"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


# --- Compose ---------------------------------------------------------------------------------------


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_compose_file_is_caught_by_the_compose_specification(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    compose["services"]["worker"]["healthcheck"]["retries"] = "three"
    compose["services"]["worker"]["restart_policy"] = "always"  # not a service's field
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    result = check_jsonschema(broken)
    assert result.returncode == 1
    assert "$.services.worker" in result.stdout and "restart_policy" in result.stdout, result.stdout


# --- Dockerfile ------------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_dockerfile_is_caught_by_hadolint(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text().replace("FROM python:3.11.13-slim-bookworm AS build", "FROM python:latest AS build")
    broken = tmp_path / "Dockerfile"
    broken.write_text(text + "\nRUN cd /tmp && apt-get install curl\n")
    result = hadolint(broken)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3003", "DL3008"):  # a `latest` tag, `cd` in RUN, unpinned apt packages
        assert rule in result.stdout, result.stdout


# --- commands --------------------------------------------------------------------------------------


def test_every_rhizome_command_in_the_deployment_files_parses_with_the_cli() -> None:
    commands = rhizome_commands()
    where = {w.split(" ")[0] for w, _ in commands}
    assert where == {
        "docker-compose.yml",
        "Dockerfile",
        "ingest.yaml",
        "portal.yaml",
        "worker.yaml",
        "console.yaml",
        "migrate-job.yaml",
    }
    assert {w: cli_problem(argv) for w, argv in commands} == {w: None for w, _ in commands}


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["worker", "--log-level", "info"], "unrecognized arguments: --log-level info"),
        (["workers"], "argument COMMAND: invalid choice: 'workers'"),
        (["db", "migrate"], "argument action: invalid choice: 'migrate'"),
    ],
)
def test_a_command_the_cli_does_not_know_is_caught(argv: list[str], complaint: str) -> None:
    problem = cli_problem(argv)
    assert problem is not None and complaint in problem, problem
