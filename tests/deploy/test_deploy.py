"""deploy/: the compose file and the kustomize manifests, rendered by their own tools and read.

``docker-compose config`` (or ``docker compose config``) renders deploy/compose.yaml with
deploy/.env.example; ``kubectl kustomize`` renders deploy/k8s/base and every overlay under
deploy/k8s/overlays. Nothing is run: there is no Docker engine or cluster here. A missing
tool fails the test (these files would otherwise go unchecked): .ci/run installs
docker-compose from Debian, and kubectl (Debian's ``kubernetes-client`` when there is no
``kubectl`` package).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from iomflow.cli.launcher import SERVICES
from iomflow.shared.contracts import Streams

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
OVERLAYS = sorted(p for p in (K8S / "overlays").glob("*") if (p / "kustomization.yaml").is_file())
TARGETS = [K8S / "base", *OVERLAYS]
TIMEOUT = 120


# --- tools ----------------------------------------------------------------------------------


def load_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


@functools.cache
def compose_command() -> tuple[str, ...]:
    found = shutil.which("docker-compose")
    if found:
        return (found,)
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=TIMEOUT
        )
        if plugin.returncode == 0:
            return (docker, "compose")
    pytest.fail(
        "neither docker-compose nor the docker compose plugin is installed, so "
        "deploy/compose.yaml cannot be validated: apt-get install docker-compose "
        "(.ci/run does it)"
    )


@functools.cache
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not installed, so deploy/k8s cannot be rendered (kubectl kustomize): "
            "apt-get install kubectl, or Debian's kubernetes-client (.ci/run tries both)"
        )
    return found


def compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # Without the variables the example sets, so the file alone decides what is rendered.
    defined = set(env_variables(ENV_EXAMPLE)) | set(env_variables(ENV_EXAMPLE, commented=True))
    env = {k: v for k, v in os.environ.items() if k not in defined}
    return subprocess.run(
        [*compose_command(), "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT,
    )


@functools.cache
def rendered_compose() -> dict[str, Any]:
    done = compose_config(ENV_EXAMPLE)
    assert done.returncode == 0, f"compose config failed:\n{done.stderr}"
    (config,) = load_documents(done.stdout)
    return dict(config)


@functools.cache
def rendered_kustomize(target: Path) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"kubectl kustomize {target} failed:\n{done.stderr}"
    docs = load_documents(done.stdout)
    assert docs, f"kubectl kustomize {target} rendered nothing"
    return tuple(docs)


def env_variables(path: Path, *, commented: bool = False) -> dict[str, str]:
    """NAME=value lines of an env file (or, with ``commented``, its ``# NAME=value`` lines)."""
    pattern = r"#\s*([A-Z][A-Z0-9_]*)=(.*)" if commented else r"([A-Z][A-Z0-9_]*)=(.*)"
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(pattern, line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def service_port(name: str) -> int:
    settings = importlib.import_module(f"iomflow.{name}.settings").Settings
    return int(settings.model_fields["http_port"].default)


def image_cmd(name: str) -> list[str]:
    """The Dockerfile's CMD (exec form); the images have no ENTRYPOINT."""
    text = (ROOT / "services" / name / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"^ENTRYPOINT\b", text, re.M), "an ENTRYPOINT changes the commands"
    cmds = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert cmds, f"services/{name}/Dockerfile has no exec-form CMD"
    return list(json.loads(cmds[-1]))


def as_list(command: Any) -> list[str]:
    return command.split() if isinstance(command, str) else [str(c) for c in command]


# --- docker-compose -------------------------------------------------------------------------


def compose_service(name: str) -> dict[str, Any]:
    services = rendered_compose()["services"]
    assert name in services, f"compose has no service {name!r}; it has {sorted(services)}"
    return dict(services[name])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def volume_targets(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only) of a service's volumes, short or long syntax."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            source, target = str(volume.get("source", "")), volume["target"]
            read_only = bool(volume.get("read_only"))
        found[target] = (source, read_only)
    return found


def test_compose_config_is_valid_with_the_example_env() -> None:
    services = rendered_compose()["services"]
    expected = {"redis", "postgres", "jaeger", "otel-collector"}
    expected |= {name for name in SERVICES} | {f"{name}-migrate" for name in SERVICES}
    assert expected <= set(services), f"missing: {sorted(expected - set(services))}"


def test_compose_refuses_to_render_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    done = compose_config(empty)
    assert done.returncode != 0, "passwords and keys must be required, not defaulted"
    assert "PASSWORD" in done.stderr or "KEY" in done.stderr, done.stderr


def test_every_compose_variable_has_a_default_or_is_required_and_documented() -> None:
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    required = set(env_variables(ENV_EXAMPLE))
    documented = required | set(env_variables(ENV_EXAMPLE, commented=True))
    problems = []
    for match in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", text):
        name, rest = match.groups()
        if rest.startswith(":?"):
            if name not in required:
                problems.append(f"{name} is required but not set in .env.example")
        elif rest.startswith(":-"):
            if name not in documented:
                problems.append(f"{name} is not documented in .env.example")
        else:
            problems.append(f"${{{name}{rest}}} has neither a default nor :? (required)")
    assert not problems, "\n".join(sorted(set(problems)))
    secret_like = [n for n in documented if re.search(r"PASSWORD|ADMIN_KEY", n)]
    assert all(n in required for n in secret_like), "a password or key with a default"


def test_redis_keeps_an_append_only_file_and_loads_the_acl_file() -> None:
    redis = compose_service("redis")
    command = as_list(redis.get("command"))
    joined = " ".join(command)
    assert re.search(r"--appendonly\s+\"?yes", joined), f"no appendonly yes: {command}"
    assert re.search(r"--maxmemory-policy\s+noeviction", joined), "streams must not be evicted"
    volumes = volume_targets(redis)
    assert "/data" in volumes, "the AOF lives in /data: it needs a volume"
    acl = re.search(r"--aclfile\s+(\S+)", joined)
    assert acl, f"no --aclfile: {command}"
    source, read_only = volumes.get(acl.group(1), ("", False))
    assert source.endswith("redis/users.acl") and read_only, (
        f"{acl.group(1)} must be deploy/redis/users.acl, mounted read-only"
    )
    assert redis.get("healthcheck", {}).get("test"), "redis has a healthcheck"


def test_postgres_creates_one_database_per_service() -> None:
    postgres = compose_service("postgres")
    source, read_only = volume_targets(postgres).get("/docker-entrypoint-initdb.d", ("", False))
    assert Path(source).resolve() == (DEPLOY / "postgres").resolve() and read_only
    script = (DEPLOY / "postgres" / "init-databases.sh").read_text(encoding="utf-8")
    assert re.search(rf'^SERVICES="{" ".join(SERVICES)}"$', script, re.M)
    env = environment(postgres)
    for name in SERVICES:
        assert env.get(f"{name.upper()}_DB_PASSWORD"), f"the init script needs {name}'s password"
    assert postgres.get("healthcheck", {}).get("test"), "postgres has a healthcheck"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_its_migration_one_shot_first(name: str) -> None:
    service = compose_service(name)
    migrate = compose_service(f"{name}-migrate")
    cmd = image_cmd(name)
    assert as_list(migrate.get("command")) == [cmd[0], "migrate"], migrate.get("command")
    assert migrate.get("restart", "no") == "no"
    assert depends_on(service).get(f"{name}-migrate") == "service_completed_successfully"
    assert depends_on(migrate).get("postgres") == "service_healthy"
    assert service.get("command") in (None, cmd), "the service runs the image's CMD (serve)"
    for svc in (service, migrate):
        build = svc.get("build") or {}
        assert Path(build.get("context", "")).resolve() == ROOT, "build context: the repo root"
        assert build.get("dockerfile") == f"services/{name}/Dockerfile"
    assert migrate["image"] == service["image"], "the migration runs the service's image"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_its_own_database_redis_user_and_settings(name: str) -> None:
    service = compose_service(name)
    env = environment(service)
    url = urlsplit(env["IOMFLOW_DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.path == f"/{name}" and url.username == name, f"{name}'s own database and role"
    assert url.hostname == "postgres"
    migrate_env = environment(compose_service(f"{name}-migrate"))
    assert migrate_env["IOMFLOW_DATABASE_URL"] == env["IOMFLOW_DATABASE_URL"]
    redis = urlsplit(env["IOMFLOW_REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis"
    assert redis.username == f"iomflow-{name}" and redis.password, "its own ACL user"
    assert env.get("IOMFLOW_ADMIN_KEY")
    assert "IOMFLOW_CONSUMER" not in env, "a fixed consumer name would clash between replicas"
    assert "IOMFLOW_SERVICE" not in env, "the consumer group is the service's own name"
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").startswith("http://otel-collector:")
    unknown = [n for n in env if n.startswith("IOMFLOW_") and n not in settings_of(name)]
    assert not unknown, f"{name} reads no such settings (a typo is silently ignored): {unknown}"


def test_each_service_has_its_own_database() -> None:
    urls = [environment(compose_service(n))["IOMFLOW_DATABASE_URL"] for n in SERVICES]
    assert len({urlsplit(u).path for u in urls}) == len(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_health_checked_on_ready(name: str) -> None:
    check = compose_service(name).get("healthcheck") or {}
    test = " ".join(as_list(check.get("test") or []))
    assert "/health/ready" in test, f"healthcheck: {test!r}"
    assert f":{service_port(name)}/" in test, "the healthcheck asks the service's own port"


def test_traces_go_through_the_collector_to_jaeger() -> None:
    jaeger = compose_service("jaeger")
    assert "jaeger" in jaeger["image"]
    assert any("16686" in str(p) for p in jaeger.get("ports") or []), "the Jaeger UI port"
    collector = compose_service("otel-collector")
    assert "opentelemetry-collector" in collector["image"]
    config_path = next(
        (s for s, _ in volume_targets(collector).values() if s.endswith("otel-collector.yaml")),
        None,
    )
    assert config_path, "deploy/otel-collector.yaml is mounted"
    (config,) = load_documents((DEPLOY / "otel-collector.yaml").read_text(encoding="utf-8"))
    traces = config["service"]["pipelines"]["traces"]
    assert "otlp" in traces["receivers"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert any(e.startswith("otlp") for e in traces["exporters"]), "traces are exported (OTLP)"
    endpoint = environment(collector).get("JAEGER_OTLP_ENDPOINT", "")
    assert endpoint.startswith("jaeger:"), "the collector's traces go to the jaeger service"


# --- kubernetes -----------------------------------------------------------------------------


def objects(target: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered_kustomize(target) if d.get("kind") == kind}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def documented_secrets() -> dict[str, set[str]]:
    docs = load_documents(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    return {
        d["metadata"]["name"]: set(d.get("stringData") or {}) | set(d.get("data") or {})
        for d in docs
        if d.get("kind") == "Secret"
    }


def test_there_is_an_example_overlay() -> None:
    assert OVERLAYS, "deploy/k8s/overlays/<name>/kustomization.yaml: at least one example"


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
def test_kustomize_builds_and_commits_no_secret(target: Path) -> None:
    docs = rendered_kustomize(target)
    assert all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name") for d in docs)
    assert not [d for d in docs if d["kind"] == "Secret"], (
        "no Secret in the manifests: reference Secrets created out of band"
    )
    for doc in docs:
        labels = doc["metadata"].get("labels") or {}
        if doc["kind"] != "Namespace":
            assert labels.get("app.kubernetes.io/part-of") == "iomflow", doc["metadata"]["name"]
            assert labels.get("app.kubernetes.io/name"), doc["metadata"]["name"]


@pytest.mark.parametrize("target", OVERLAYS, ids=lambda p: p.name)
def test_an_overlay_puts_everything_in_one_namespace(target: Path) -> None:
    docs = rendered_kustomize(target)
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, namespaces
    declared = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert declared in ([], list(namespaces))


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", SERVICES)
def test_deployment(target: Path, name: str) -> None:
    deployments = objects(target, "Deployment")
    assert name in deployments, f"no Deployment {name} in {target.name}"
    deployment = deployments[name]
    spec = deployment["spec"]
    assert isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1, "replicas"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert selects(spec["selector"]["matchLabels"], pod_labels)
    assert pod_labels.get("app.kubernetes.io/name") == name
    assert pod_labels.get("app.kubernetes.io/part-of") == "iomflow"
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    assert f"iomflow-{name}" in container.get("image", ""), container.get("image")
    assert container.get("command") in (None, image_cmd(name))
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    assert service_port(name) in ports.values(), f"containerPort {service_port(name)}"

    requests = (container.get("resources") or {}).get("requests") or {}
    limits = (container.get("resources") or {}).get("limits") or {}
    assert requests.get("cpu") and requests.get("memory"), "resource requests"
    assert limits.get("memory"), "a memory limit"

    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        http = (container.get(probe) or {}).get("httpGet") or {}
        assert http.get("path") == path, f"{probe} must GET {path}: {container.get(probe)}"
        port = http.get("port")
        assert ports.get(port, port) == service_port(name), f"{probe} port {port}"

    env = {e["name"]: e for e in container.get("env") or []}
    consumer = env.get("IOMFLOW_CONSUMER", {})
    assert consumer.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", (
        "IOMFLOW_CONSUMER must be the pod's name (downward API): unique per replica"
    )
    assert "IOMFLOW_SERVICE" not in env, "the consumer group is the service's own name"
    assert {"IOMFLOW_DATABASE_URL", "IOMFLOW_REDIS_URL"} <= set(env), "from a Secret"


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
def test_config_and_secret_references_resolve(target: Path) -> None:
    configmaps = objects(target, "ConfigMap")
    secrets = documented_secrets()
    problems = []
    workloads = [*objects(target, "Deployment").values(), *objects(target, "Job").values()]
    for workload in workloads:
        where = f"{workload['kind']} {workload['metadata']['name']}"
        for container in pod_spec(workload)["containers"]:
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    if ref not in configmaps:
                        problems.append(f"{where}: ConfigMap {ref} is not in the build")
                if "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    if ref not in secrets:
                        problems.append(f"{where}: Secret {ref} is not in secret.example.yaml")
            for var in container.get("env") or []:
                value_from = var.get("valueFrom") or {}
                if "configMapKeyRef" in value_from:
                    ref = value_from["configMapKeyRef"]
                    if ref["key"] not in (configmaps.get(ref["name"], {}).get("data") or {}):
                        problems.append(f"{where}: {var['name']} from missing {ref}")
                if "secretKeyRef" in value_from:
                    ref = value_from["secretKeyRef"]
                    if ref["key"] not in secrets.get(ref["name"], set()):
                        problems.append(
                            f"{where}: {var['name']} from {ref['name']}/{ref['key']}, "
                            "which deploy/k8s/secret.example.yaml does not document"
                        )
            # Settings the code reads, under their real names (a typo is silently ignored).
            names = [v["name"] for v in container.get("env") or []]
            for source in container.get("envFrom") or []:
                map_name = str((source.get("configMapRef") or {}).get("name"))
                names += list(configmaps.get(map_name, {}).get("data") or {})
            service = workload["metadata"]["labels"]["app.kubernetes.io/name"]
            unknown = [
                n for n in names if n.startswith("IOMFLOW_") and n not in settings_of(service)
            ]
            problems += [f"{where}: {n} is no setting of {service}" for n in unknown]
    assert not problems, "\n".join(problems)


@functools.cache
def settings_of(name: str) -> frozenset[str]:
    """The IOMFLOW_* variables a service reads (its Settings' fields)."""
    settings = importlib.import_module(f"iomflow.{name}.settings").Settings
    return frozenset(f"IOMFLOW_{field.upper()}" for field in settings.model_fields)


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", SERVICES)
def test_migration_job(target: Path, name: str) -> None:
    deployment = objects(target, "Deployment")[name]
    (app,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    jobs = [
        job
        for job in objects(target, "Job").values()
        if any(c.get("image") == app["image"] for c in pod_spec(job)["containers"])
    ]
    assert len(jobs) == 1, f"one migration Job with {name}'s image, found {len(jobs)}"
    job = jobs[0]
    (container,) = pod_spec(job)["containers"]
    assert as_list(container.get("command") or []) == [image_cmd(name)[0], "migrate"]
    assert pod_spec(job).get("restartPolicy") in ("Never", "OnFailure")
    env = {e["name"]: e for e in container.get("env") or []}
    app_env = {e["name"]: e for e in app.get("env") or []}
    assert env["IOMFLOW_DATABASE_URL"] == app_env["IOMFLOW_DATABASE_URL"], "the same database"
    assert (container.get("resources") or {}).get("requests"), "resource requests"
    service = objects(target, "Service").get(name, {})
    job_labels = job["spec"]["template"]["metadata"].get("labels") or {}
    assert not selects(service.get("spec", {}).get("selector") or {}, job_labels), (
        "the Service must not send traffic to the migration pod"
    )


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", SERVICES)
def test_autoscaler_targets_the_deployment(target: Path, name: str) -> None:
    hpas = [
        h
        for h in objects(target, "HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"].get("name") == name
    ]
    assert len(hpas) == 1, f"one HorizontalPodAutoscaler for Deployment {name}"
    hpa = hpas[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref.get("apiVersion"), ref.get("kind")) == ("apps/v1", "Deployment")
    low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    assert 1 <= low <= high
    replicas = objects(target, "Deployment")[name]["spec"]["replicas"]
    assert low <= replicas <= high, f"replicas {replicas} outside the HPA's {low}..{high}"
    assert hpa["spec"].get("metrics"), "what it scales on"


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: p.name)
@pytest.mark.parametrize("name", SERVICES)
def test_service_selects_the_deployment_pods(target: Path, name: str) -> None:
    deployment = objects(target, "Deployment")[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = [
        s
        for s in objects(target, "Service").values()
        if selects(s["spec"].get("selector"), pod_labels)
    ]
    assert len(services) == 1, f"one Service selecting Deployment {name}'s pods"
    (container,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    for port in services[0]["spec"]["ports"]:
        target_port = port.get("targetPort", port["port"])
        assert ports.get(target_port, target_port) in ports.values(), port
    for other in objects(target, "Deployment").values():
        if other is not deployment:
            other_labels = other["spec"]["template"]["metadata"]["labels"]
            assert not selects(services[0]["spec"]["selector"], other_labels)


def test_readme_names_every_stream_and_its_slot_for_the_cluster() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    streams = [v for k, v in vars(Streams).items() if k.isupper() and isinstance(v, str)]
    assert streams
    missing = [s for s in streams if s not in readme]
    assert not missing, f"deploy/README.md does not name {missing}"
    assert "{<stream>}:errors:<group>" in readme and "CROSSSLOT" in readme
    assert "redis+sentinel://" in readme and "redis+cluster://" in readme
