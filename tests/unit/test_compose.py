"""docker-compose.yml, checked statically: health, ordering, pinned images, secrets only as files, wiring."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudops.settings import SECRETS_DIR_ENV, ServiceSettings, check_secret, load_settings, unknown_env_keys
from fraudops_ingest.settings import IngestSettings
from fraudops_monitor.settings import MonitorSettings
from fraudops_registry_gateway.settings import RegistryGatewaySettings
from fraudops_scorer.settings import ScorerSettings
from fraudops_trainer.settings import TrainerSettings
from tests.unit.test_dockerfiles import PINNED_IMAGE, ROOT, parse_dockerfile

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MAKE_ENV = ROOT / "infrastructure" / "compose" / "make-env.sh"
SERVICES: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "trainer": TrainerSettings,
    "scorer": ScorerSettings,
    "monitor": MonitorSettings,
    "registry-gateway": RegistryGatewaySettings,
}
MONITORING = {"prometheus", "alertmanager", "grafana"}
AIRFLOW = {"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
# The issue's `core` profile: Kafka, Postgres, MinIO, MLflow and the services (with their one-shot jobs).
CORE = {"kafka", "kafka-init", "postgres", "minio", "minio-init", "mlflow", *SERVICES}
FULL = {*CORE, *MONITORING, *AIRFLOW}
ONE_SHOT = {"kafka-init", "minio-init", "airflow-init"}
# A tag that names a release: digits in it (1.2.3, 17.11, RELEASE.2025-...), never "latest".
RELEASE_TAG = re.compile(r"^[\w.-]+(/[\w.-]+)*:[\w.-]*\d[\w.-]*(@sha256:[0-9a-f]{64})?$")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|DATABASE_URL")
REQUIRED_REFERENCE = re.compile(r"\$\{(\w+):\?[^}]*\}")
ANY_REFERENCE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
CREDENTIALS_IN_URL = re.compile(r"://[^/@:]*:([^/@]*)@")
SECRETS_MOUNT = "/run/secrets"
# make compose-env's secret files rebuilt from the others on every run; every other file is a kept value.
COMPOSED_SECRETS = {
    *(f"{service}_tokens" for service in ("ingest", "trainer", "scorer", "monitor", "registry_gateway")),
    *(f"{service}_database_url" for service in ("ingest", "trainer", "registry_gateway")),
    "mlflow_backend_store_uri",
    "airflow_sql_alchemy_conn",
    "airflow_connections.json",
    "datasets_s3_credentials",
    "mlflow_s3_credentials",
}


def _bash() -> str:
    bash = shutil.which("bash")
    assert bash is not None, "bash runs infrastructure/compose/make-env.sh"
    return bash


BASH = _bash()


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is a mapping (KEY: value)"
    return {str(key): str(value) for key, value in env.items()}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, as far as this file uses them."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name, "")
        if operator == ":?":
            assert value, f"{name} is required: {argument}"
        if operator == ":-" and not value:
            return argument
        return value

    return ANY_REFERENCE.sub(replace, text)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def referenced_variables(required_only: bool = False) -> set[str]:
    text = yaml.safe_dump(compose(), width=10_000)  # the values, not the comments
    if required_only:
        return set(REQUIRED_REFERENCE.findall(text))
    return {match.group(1) for match in ANY_REFERENCE.finditer(text)}


def run_make_env(env_file: Path, secrets_dir: Path) -> str:
    result = subprocess.run(
        [BASH, str(MAKE_ENV), str(env_file), str(secrets_dir)], capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .env make compose-env writes; its secret files are in generated_secrets(path)."""
    path = tmp_path_factory.mktemp("compose") / "compose.env"
    output = run_make_env(path, generated_secrets(path))
    for file in generated_secrets(path).iterdir():
        assert file.read_text(encoding="utf-8") not in output, "make-env printed a secret"
    return path


def generated_secrets(env_file: Path) -> Path:
    return env_file.parent / "secrets"


def declared_secret_files() -> dict[str, str]:
    """Top-level secret name -> its file's name in .secrets/."""
    files = {}
    for name, spec in compose()["secrets"].items():
        assert set(spec) == {"file"}, f"secret {name}: a host file (compose copies other kinds into the container)"
        path = str(spec["file"])
        assert path.startswith("./.secrets/"), f"secret {name}: {path} is not in ./.secrets/ (a relative path)"
        assert path.count("/") == 2, f"secret {name}: {path} is not directly in ./.secrets/"
        files[name] = path.removeprefix("./.secrets/")
    return files


def enabled(profiles: set[str]) -> set[str]:
    """The services compose starts with these profiles active: those without `profiles`, and those sharing one."""
    return {
        name for name, service in services().items() if "profiles" not in service or profiles & set(service["profiles"])
    }


def active_profiles(env_file: Path) -> set[str]:
    """COMPOSE_PROFILES of an env file as compose reads it: comma-separated, blanks ignored."""
    value = read_env_file(env_file).get("COMPOSE_PROFILES", "")
    return {name.strip() for name in value.split(",") if name.strip()}


all_services = pytest.mark.parametrize("name", sorted(FULL))
app_services = pytest.mark.parametrize("name", sorted(SERVICES))


def test_kafka_runs_the_version_the_local_stack_and_tests_run() -> None:
    # The local stack's jars come from infrastructure/kafka/pom.xml: compose users get the broker the tests ran.
    pom = (ROOT / "infrastructure" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    local = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert local is not None
    assert services()["kafka"]["image"] == f"apache/kafka:{local.group(1)}"


def test_the_stack_is_complete_and_every_service_names_its_profiles() -> None:
    assert set(services()) == FULL
    for name, service in services().items():
        expected = ["core", "full"] if name in CORE else ["full"]
        assert service.get("profiles") == expected, name


def test_the_core_profile_is_the_core_and_the_full_profile_everything() -> None:
    assert enabled({"core"}) == CORE
    assert enabled({"full"}) == FULL
    assert enabled(set()) == set(), "no service starts by accident when no profile is chosen"


@pytest.mark.parametrize("profile", ["core", "full"])
def test_every_profile_is_closed_under_depends_on(profile: str) -> None:
    """Compose refuses to start a service whose required dependency is in no active profile."""
    started = enabled({profile})
    for name in started:
        for dependency, spec in services()[name].get("depends_on", {}).items():
            if spec.get("required", True):
                assert dependency in started, f"{name} ({profile}) depends on {dependency}, which is not in {profile}"


def test_the_default_is_the_full_stack(generated_env: Path) -> None:
    assert enabled(active_profiles(ENV_EXAMPLE)) == FULL
    assert enabled(active_profiles(generated_env)) == FULL


def test_the_core_runs_without_airflow_or_monitoring() -> None:
    """The monitor names Airflow only by URL (retraining), never as a dependency compose would enforce."""
    for name in CORE:
        assert not set(services()[name].get("depends_on", {})) & (AIRFLOW | MONITORING), name


@all_services
def test_long_running_services_have_a_health_check_and_one_shots_are_waited_for(name: str) -> None:
    service = services()[name]
    if name in ONE_SHOT:
        assert service.get("restart") == "no"
        assert "healthcheck" not in service
        waiters = [
            other
            for other in services().values()
            if other.get("depends_on", {}).get(name, {}).get("condition") == "service_completed_successfully"
        ]
        assert waiters, f"nothing waits for {name} to complete"
    else:
        assert service.get("restart") == "unless-stopped"
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list), f"{name} has no health check"
        assert test[0] == "CMD"


@all_services
def test_every_dependency_names_a_condition(name: str) -> None:
    depends_on = services()[name].get("depends_on", {})
    assert isinstance(depends_on, dict), "depends_on in long form, with a condition"
    for dependency, spec in depends_on.items():
        assert dependency in services()
        expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
        assert spec == {"condition": expected}, f"{name} -> {dependency}"


@all_services
def test_volumes_are_named_or_read_only_files_of_the_repository(name: str) -> None:
    declared = set(compose().get("volumes") or {})
    for mount in services()[name].get("volumes", []):
        assert isinstance(mount, str)
        source, target, *options = mount.split(":")
        assert target.startswith("/")
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{source}: no such file"
            assert options == ["ro"], f"{source} is mounted read-only"
        else:
            assert not source.startswith(("/", "~", "..")), f"host path {source}"
            assert source in declared, f"{source} is not a declared named volume"


@all_services
def test_images_are_pinned(name: str) -> None:
    service = services()[name]
    image = str(service["image"])
    assert "latest" not in image
    if "build" in service:
        # One variable selects every prebuilt image (the images workflow's <repository>:<version>-<component>);
        # unset, the local build's name.
        assert re.fullmatch(r"\$\{FRAUDOPS_IMAGES:-fraudops:dev\}-[a-z-]+", image), image
    else:
        assert RELEASE_TAG.match(image), f"{image} is not pinned to a release"
    if name == "postgres":
        assert re.fullmatch(r"postgres:\d+\.\d+", image)


def secret_source(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else str(entry["source"])


def secret_paths(service: dict[str, Any]) -> dict[str, str]:
    """Where each of the service's secrets is mounted -> its top-level name."""
    paths = {}
    for entry in service.get("secrets", []):
        target = secret_source(entry) if isinstance(entry, str) else str(entry.get("target", entry["source"]))
        paths[target if target.startswith("/") else f"{SECRETS_MOUNT}/{target}"] = secret_source(entry)
    return paths


@all_services
def test_no_secret_passes_through_the_environment(name: str) -> None:
    """Every image of the stack reads its secrets from files, so no secret is an environment value: each
    secret-looking setting names a file the service mounts (*_FILE, Airflow's *_CMD and secrets backend) or
    the folder of them (FRAUDOPS_SECRETS_DIR), and no URL carries a password."""
    service = services()[name]
    mounted = secret_paths(service)
    for key, value in environment(service).items():
        for path in re.findall(rf"{SECRETS_MOUNT}/[\w.-]+", value):
            assert path in mounted, f"{name}: {key} names {path}, which it does not mount"
        assert not CREDENTIALS_IN_URL.search(value), f"{name}: {key} has a password in a URL"
        if key == "FRAUDOPS_SECRETS_DIR":
            assert value == SECRETS_MOUNT
        elif key.endswith("_FILE"):
            assert value in mounted, f"{name}: {key}={value} is not a secret file of the service"
        elif key.endswith("_CMD"):
            command, _, path = value.partition(" ")
            assert command == "cat", f"{name}: {key} must only read a secret file"
            assert path in mounted, f"{name}: {key} must read a mounted secret file"
        elif key == "AIRFLOW__SECRETS__BACKEND":
            assert value == "airflow.secrets.local_filesystem.LocalFilesystemBackend", "it reads files"
        elif key == "AIRFLOW__SECRETS__BACKEND_KWARGS":
            assert set(json.loads(value).values()) <= set(mounted)
        elif SECRET_KEY.search(key):
            pytest.fail(f"{name}: {key} is a secret in the environment; mount it as a file")
        assert not (ANY_REFERENCE.search(value) and SECRET_KEY.search(key)), f"{name}: {key} interpolates .env"
    # Scripts compose runs inline read their secrets from the mounted files too.
    for line in service.get("command", []) if isinstance(service.get("command"), list) else []:
        for path in re.findall(rf"{SECRETS_MOUNT}/[\w.-]*\w", str(line).replace("{user}", "admin")):
            assert path in mounted, f"{name}: its command reads {path}, which it does not mount"


@all_services
def test_secret_files_are_bind_mounted_from_the_secrets_folder(name: str) -> None:
    """File secrets are read-only bind mounts, fine in a read_only container (compose refuses to copy an
    environment secret into one), and compose ignores uid/gid/mode for them (swarm only): the host files'
    mode (0644) is what the containers' users get."""
    service = services()[name]
    declared = declared_secret_files()
    for entry in service.get("secrets", []):
        assert secret_source(entry) in declared, f"{name}: secret {secret_source(entry)} is not declared"
        if isinstance(entry, dict):
            assert set(entry) <= {"source", "target"}, f"{name}: uid/gid/mode do not apply to file secrets"
            assert not str(entry.get("target", "")).startswith("/"), "mounted in /run/secrets"


def test_every_secret_file_compose_mounts_is_one_make_env_writes(generated_env: Path) -> None:
    secrets_dir = generated_secrets(generated_env)
    used = {secret_source(entry) for service in services().values() for entry in service.get("secrets", [])}
    assert used == set(compose()["secrets"]), "every declared secret is mounted somewhere"
    written = {file.name: file.read_text(encoding="utf-8") for file in secrets_dir.iterdir()}
    mounted = set(declared_secret_files().values())
    assert mounted <= set(written), f"compose mounts files make compose-env never writes: {mounted - set(written)}"
    # The rest are values composed into mounted files (a principal's token in a table, a password in a URL).
    for name in set(written) - mounted:
        assert any(written[name] in written[other] for other in mounted & COMPOSED_SECRETS), f"{name} is unused"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    for file in secrets_dir.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, f"{file.name}: readable by the containers' users"
        if file.name.endswith("_tokens"):
            for principal, token in json.loads(file.read_text(encoding="utf-8")).items():
                check_secret(f"{file.name}: {principal}", token)
        elif file.name not in COMPOSED_SECRETS:
            check_secret(file.name, file.read_text(encoding="utf-8"))
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".secrets/" in ignored
    assert ".secrets" in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()


def test_images_come_from_registries_that_still_serve_them() -> None:
    """MinIO deleted minio/minio and minio/mc from Docker Hub (September 2026); quay.io keeps serving them."""
    for name in ("minio", "minio-init"):
        assert str(services()[name]["image"]).startswith("quay.io/minio/"), name


@all_services
def test_built_images_run_as_non_root_on_pinned_bases(name: str) -> None:
    build = services()[name].get("build")
    if build is None:
        return
    dockerfile = ROOT / build["context"] / build.get("dockerfile", "Dockerfile")
    stages = parse_dockerfile(dockerfile.read_text(encoding="utf-8"))
    names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        assert stage.base in names or PINNED_IMAGE.match(stage.base), f"{dockerfile}: {stage.base} is not pinned"
    users = stages[-1].args("USER")
    assert users, f"{dockerfile} sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert uid != "0"
    assert stages[-1].args("HEALTHCHECK")


@all_services
def test_published_ports_bind_to_loopback_by_default(name: str) -> None:
    for port in services()[name].get("ports", []):
        assert isinstance(port, str), "ports in short form HOST_IP:HOST_PORT:CONTAINER_PORT"
        host_ip = interpolate(port, {}).split(":")[0]
        assert host_ip == "127.0.0.1", f"{name}: {port}"
    if name in {"mlflow", "kafka", "prometheus", "alertmanager", "grafana"}:
        for port in services()[name].get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} has no authentication of ours: loopback only"
    if name in {"postgres", "minio"}:
        assert "ports" not in services()[name]


@all_services
def test_containers_are_hardened(name: str) -> None:
    service = services()[name]
    assert service.get("security_opt") == ["no-new-privileges:true"]
    if name in SERVICES or name in {"prometheus", "alertmanager", "grafana"}:
        assert service.get("read_only") is True
    if name == "grafana":
        # Its default log mode also writes files under /var/log/grafana, which a read-only root refuses.
        assert environment(service)["GF_LOG_MODE"] == "console"
    if name in SERVICES or name in {"mlflow", "kafka-init"} or name in AIRFLOW:
        assert service.get("read_only") is True
        assert "/tmp" in service.get("tmpfs", [])
        assert service.get("cap_drop") == ["ALL"]


@app_services
def test_services_are_built_from_the_repository(name: str) -> None:
    build = services()[name]["build"]
    assert build == {"context": ".", "dockerfile": f"services/{name}/Dockerfile"}


@app_services
def test_service_settings_load_from_the_secret_files_as_compose_mounts_them(
    name: str, generated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydantic-settings looks a field up in the secrets folder as a file named <env prefix><field> (matched
    without case, JSON for a dict like TOKENS): each target must be that name, or the service never sees it."""
    settings_cls = SERVICES[name]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    service = services()[name]
    env = environment(service)
    assert unknown_env_keys(settings_cls, env) == [], "the service refuses unknown settings"
    # /run/secrets as compose lays it out: each host file under its target name.
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    files = declared_secret_files()
    mounted = {}
    for path, secret in secret_paths(service).items():
        target = path.removeprefix(f"{SECRETS_MOUNT}/")
        mounted[target] = (generated_secrets(generated_env) / files[secret]).read_text(encoding="utf-8")
        (run_secrets / target).write_text(mounted[target], encoding="utf-8")
    from_env = {key[len(prefix) :].split("__", 1)[0].lower() for key in env if key.startswith(prefix)}
    from_files = {target[len(prefix) :] for target in mounted if target.startswith(prefix.lower())}
    unknown = from_files - set(settings_cls.model_fields)
    assert not unknown, f"secret files named after no setting: {unknown}"
    required = {field for field, info in settings_cls.model_fields.items() if info.is_required()}
    assert required <= from_env | from_files, f"required settings not set: {required - from_env - from_files}"
    # The real thing: the service's own loader, on the environment and the files compose would give it.
    dotenv = read_env_file(generated_env)
    for key in list(os.environ):
        if key.startswith(("FRAUDOPS_", "AWS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(value, dotenv))
    monkeypatch.setenv(SECRETS_DIR_ENV, str(run_secrets))
    settings = load_settings(settings_cls)
    tokens = {principal: token.get_secret_value() for principal, token in settings.tokens.items()}
    assert tokens == json.loads(mounted[f"{prefix.lower()}tokens"])
    for field in from_files - {"tokens"}:
        assert getattr(settings, field).get_secret_value() == mounted[prefix.lower() + field], field
    if "database_url" in from_files:
        assert getattr(settings, "database_url").get_secret_value().startswith("postgresql+psycopg://")  # noqa: B009
    if "kafka" in from_env:
        assert getattr(settings, "kafka").bootstrap_servers == "kafka:9092"  # noqa: B009
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        credentials = mounted[env["AWS_SHARED_CREDENTIALS_FILE"].removeprefix(f"{SECRETS_MOUNT}/")]
        assert "[default]\naws_access_key_id = fraudops-datasets\naws_secret_access_key = " in credentials


def test_wiring_between_the_parts() -> None:
    ingest, trainer = environment(services()["ingest"]), environment(services()["trainer"])
    assert ingest["FRAUDOPS_INGEST_DATASETS_URI"].startswith("s3://fraudops-datasets/")
    for env in (ingest, trainer):
        assert env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
        assert env["AWS_SHARED_CREDENTIALS_FILE"] == f"{SECRETS_MOUNT}/datasets_s3_credentials"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env), "the key pair is in the file"
    assert trainer["FRAUDOPS_TRAINER_INGEST_URL"] == "http://ingest:8001"
    assert trainer["FRAUDOPS_TRAINER_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    mlflow = environment(services()["mlflow"])
    assert mlflow["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://fraudops-mlflow/"
    assert mlflow["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    allowed = interpolate(mlflow["MLFLOW_SERVER_ALLOWED_HOSTS"], {}).split(",")
    assert {"mlflow:5000", "localhost:5000"} <= set(allowed)
    assert mlflow["MLFLOW_BACKEND_STORE_URI_FILE"] == f"{SECRETS_MOUNT}/mlflow_backend_store_uri"
    assert mlflow["AWS_SHARED_CREDENTIALS_FILE"] == f"{SECRETS_MOUNT}/mlflow_s3_credentials"
    monitor = environment(services()["monitor"])
    assert monitor["FRAUDOPS_MONITOR_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert monitor["FRAUDOPS_MONITOR_GATEWAY_URL"] == "http://registry-gateway:8005"
    assert secret_paths(services()["monitor"])[f"{SECRETS_MOUNT}/fraudops_monitor_gateway_token"] == (
        "monitor_gateway_token"
    )
    assert "monitor-data:/var/lib/fraudops/monitor" in services()["monitor"]["volumes"]
    init = services()["kafka-init"]
    assert init["command"] == ["fraudops", "topics", "create", "--bootstrap", "kafka:9092"]
    assert init["image"] == services()["ingest"]["image"], "the init job reuses a service image (CLI + contracts)"
    kafka = services()["kafka"]
    assert kafka["image"] == "apache/kafka:4.4.0"
    assert "PLAINTEXT://kafka:9092" in environment(kafka)["KAFKA_ADVERTISED_LISTENERS"]


def test_mlflow_image_installs_the_workspace_versions_with_hashes() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        return {name.lower(): version for name, version in found}

    image_lock = pins(ROOT / "infrastructure" / "mlflow" / "requirements.lock")
    workspace = pins(ROOT / "requirements.lock")
    assert {"mlflow", "psycopg", "psycopg-binary", "boto3"} <= set(image_lock)
    for name, version in image_lock.items():
        assert workspace.get(name) == version, f"{name}=={version} is not the workspace's version"
    dockerfile = (ROOT / "infrastructure" / "mlflow" / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes" in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/fraudops-mlflow-entrypoint"]' in dockerfile
    assert "COPY entrypoint.sh /usr/local/bin/fraudops-mlflow-entrypoint" in dockerfile


def test_mlflow_entrypoint_hands_the_backend_uri_file_to_the_server(tmp_path: Path) -> None:
    entrypoint = ROOT / "infrastructure" / "mlflow" / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK), "COPY keeps the mode: the image runs it directly"
    uri = tmp_path / "uri"
    uri.write_text("postgresql://mlflow:0123456789abcdef@postgres:5432/mlflow", encoding="utf-8")
    show = ["sh", "-c", 'printf "%s|%s" "$MLFLOW_BACKEND_STORE_URI" "${MLFLOW_BACKEND_STORE_URI_FILE-unset}"']
    env = {"PATH": os.environ["PATH"], "MLFLOW_BACKEND_STORE_URI_FILE": str(uri)}
    result = subprocess.run([BASH, str(entrypoint), *show], env=env, capture_output=True, text=True, check=True)
    assert result.stdout == f"{uri.read_text(encoding='utf-8')}|unset"
    both = {**env, "MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db"}
    refused = subprocess.run([BASH, str(entrypoint), *show], env=both, capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "not both" in refused.stderr


def test_env_example_documents_every_variable_and_holds_no_secret() -> None:
    documented = {
        line.lstrip("#").partition("=")[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if re.match(r"^#?[A-Z][A-Z0-9_]*=", line)
    }
    assert referenced_variables() <= documented
    assert not {name for name in documented if SECRET_KEY.search(name)}, "secrets are files in .secrets/"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for file in set(declared_secret_files().values()) - COMPOSED_SECRETS:
        # Families are written with a placeholder, e.g. <service>_operator_token.
        assert (
            file in text
            or re.sub(r"^(ingest|trainer|scorer|monitor|registry_gateway)_", "<service>_", file) in text
            or (re.sub(r"^(mlflow|ingest|trainer|registry_gateway|airflow)_db_", "<component>_db_", file) in text)
        ), f".env.example does not explain {file}"


def test_make_env_writes_settings_privately_and_keeps_every_secret_value(tmp_path: Path) -> None:
    env_file, secrets_dir = tmp_path / ".env", tmp_path / ".secrets"
    run_make_env(env_file, secrets_dir)
    values = read_env_file(env_file)
    assert referenced_variables(required_only=True) <= set(values)
    assert values["COMPOSE_PROFILES"] == "full"
    assert not {name for name in values if SECRET_KEY.search(name)}, "no secret in .env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    before = {file.name: file.read_bytes() for file in secrets_dir.iterdir()}
    env_before = env_file.read_bytes()
    run_make_env(env_file, secrets_dir)
    assert {file.name: file.read_bytes() for file in secrets_dir.iterdir()} == before
    assert env_file.read_bytes() == env_before
    # A value someone set is kept, and the files composed from it follow it.
    (secrets_dir / "ingest_operator_token").write_text("f" * 8 + "0123456789abcdef", encoding="utf-8")
    (secrets_dir / "ingest_tokens").unlink()
    run_make_env(env_file, secrets_dir)
    assert (
        json.loads((secrets_dir / "ingest_tokens").read_text(encoding="utf-8"))["operator"]
        == "f" * 8 + "0123456789abcdef"
    )


def test_make_env_takes_the_values_of_an_env_written_before_secrets_were_files(tmp_path: Path) -> None:
    """Postgres keeps the passwords its volume was created with: an upgraded checkout must not replace them."""
    old = tmp_path / ".env"
    old.write_text(
        "POSTGRES_PASSWORD=0123456789abcdef0123\nAIRFLOW_INGEST_TOKEN='abcdef0123456789abcd'\n", encoding="utf-8"
    )
    secrets_dir = tmp_path / ".secrets"
    output = run_make_env(old, secrets_dir)
    assert (secrets_dir / "postgres_password").read_text(encoding="utf-8") == "0123456789abcdef0123"
    assert json.loads((secrets_dir / "ingest_tokens").read_text(encoding="utf-8"))["airflow"] == "abcdef0123456789abcd"
    assert "delete its secret lines" in output
    assert "0123456789abcdef0123" not in output


def test_docker_compose_accepts_the_file(generated_env: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed; `docker compose config` not run")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if version.returncode != 0:
        pytest.skip("the docker client has no compose plugin; `docker compose config` not run")
    result = subprocess.run(
        [docker, "compose", "--env-file", str(generated_env), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def _container_port(name: str) -> int:
    (port,) = services()[name]["ports"]
    return int(interpolate(port, {}).rsplit(":", 1)[1])


def test_prometheus_scrapes_every_service_and_loads_the_rules() -> None:
    prometheus = services()["prometheus"]
    mounts = dict(mount.split(":")[:2] for mount in prometheus["volumes"])
    assert mounts["./infrastructure/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./infrastructure/prometheus/rules"] == "/etc/prometheus/rules"
    config = yaml.safe_load((ROOT / "infrastructure" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    for name in SERVICES:
        assert jobs[name] == [f"{name}:{_container_port(name)}"], f"{name} is scraped where it listens"
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == [f"alertmanager:{_container_port('alertmanager')}"]


def test_alertmanager_posts_to_the_monitor_with_the_token_secret() -> None:
    alertmanager = services()["alertmanager"]
    assert "--cluster.listen-address=" in alertmanager["command"]
    (secret,) = (secret_source(entry) for entry in alertmanager["secrets"])
    assert compose()["secrets"][secret] == {"file": "./.secrets/alertmanager_webhook_token"}
    config = yaml.safe_load((ROOT / "infrastructure" / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    webhooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert [hook["url"] for hook in webhooks] == [f"http://monitor:{_container_port('monitor')}/v1/alerts"]
    assert webhooks[0]["http_config"]["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert alertmanager["depends_on"] == {"monitor": {"condition": "service_healthy"}}


def test_make_env_gives_alertmanager_the_monitors_alertmanager_token(generated_env: Path) -> None:
    secrets_dir = generated_secrets(generated_env)
    token = (secrets_dir / "alertmanager_webhook_token").read_text(encoding="utf-8")
    check_secret("alertmanager_webhook_token", token)
    table = (secrets_dir / "monitor_tokens").read_text(encoding="utf-8")
    assert json.loads(table)["alertmanager"] == token
    assert table.count(token) == 1, "the operator has a token of its own"


def test_airflow_runs_on_the_shared_postgres_and_reaches_the_services_with_their_airflow_tokens(
    generated_env: Path,
) -> None:
    """api-server, scheduler, dag-processor and triggerer share one image and configuration; the DAGs'
    connections point at the services on the compose network with each service's "airflow" principal token."""
    dotenv = read_env_file(generated_env)
    secrets_dir = generated_secrets(generated_env)
    api, scheduler, processor, triggerer = (
        services()[n] for n in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
    )
    assert api["command"][:2] == ["airflow", "api-server"]
    assert scheduler["command"] == ["airflow", "scheduler"]
    assert processor["command"] == ["airflow", "dag-processor"]
    assert triggerer["command"] == ["airflow", "triggerer"]
    assert {services()[name]["image"] for name in AIRFLOW} == {"${FRAUDOPS_IMAGES:-fraudops:dev}-airflow"}
    assert api["ports"] == ["127.0.0.1:${FRAUDOPS_AIRFLOW_PORT:-8080}:8080"]
    env = {key: interpolate(value, dotenv) for key, value in environment(scheduler).items()}
    for other in (processor, triggerer):
        assert env == {key: interpolate(value, dotenv) for key, value in environment(other).items()}
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == f"cat {SECRETS_MOUNT}/airflow_sql_alchemy_conn"
    conn = (secrets_dir / "airflow_sql_alchemy_conn").read_text(encoding="utf-8")
    password = (secrets_dir / "airflow_db_password").read_text(encoding="utf-8")
    assert conn == f"postgresql+psycopg://airflow:{password}@postgres:5432/airflow"
    assert "\ncreate_database airflow\n" in (ROOT / "infrastructure/compose/postgres-init.sh").read_text()
    assert "airflow_db_password" in {secret_source(entry) for entry in services()["postgres"]["secrets"]}
    for name in AIRFLOW:
        assert {f"{SECRETS_MOUNT}/airflow_sql_alchemy_conn", f"{SECRETS_MOUNT}/airflow_connections.json"} <= set(
            secret_paths(services()[name])
        ), name
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__SECRETS__BACKEND"] == "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    connections = json.loads((secrets_dir / "airflow_connections.json").read_text(encoding="utf-8"))
    ports = {"ingest": 8001, "trainer": 8002, "monitor": 8004, "registry-gateway": 8005}
    assert set(connections) == {f"fraudops_{service.replace('-', '_')}" for service in ports}
    for service, port in ports.items():
        suffix = service.replace("-", "_")
        token = (secrets_dir / f"airflow_{suffix}_token").read_text(encoding="utf-8")
        assert connections[f"fraudops_{suffix}"] == f"http://:{token}@{service}:{port}"
        table = json.loads((secrets_dir / f"{suffix}_tokens").read_text(encoding="utf-8"))
        assert table["airflow"] == token, f"{service} does not accept Airflow's token"
        assert services()[service]["ports"][0].endswith(f":{port}"), f"{service} listens on {port}"
    # Tasks run in the scheduler (LocalExecutor): it needs every service up and the API server's execution API.
    assert {"airflow-api-server", "ingest", "trainer", "registry-gateway", "monitor"} <= set(scheduler["depends_on"])
    monitor = environment(services()["monitor"])
    assert monitor["FRAUDOPS_MONITOR_AIRFLOW__URL"] == "http://airflow-api-server:8080"
    assert monitor["FRAUDOPS_MONITOR_AIRFLOW__USERNAME"] == "monitor"
    assert secret_paths(services()["monitor"])[f"{SECRETS_MOUNT}/fraudops_monitor_airflow_password"] == (
        "airflow_monitor_password"
    )
    init = services()["airflow-init"]
    assert '["airflow", "db", "migrate"]' in init["command"][-1]
    assert 'f"/run/secrets/airflow_{user}_password"' in init["command"][-1]
    assert {"airflow_admin_password", "airflow_monitor_password"} <= set(secret_paths(init).values())
    for name in AIRFLOW:
        assert services()[name]["volumes"] == ["airflow-home:/opt/airflow/home"]


def test_the_triggerer_runs_beside_the_scheduler_and_checks_its_own_job() -> None:
    triggerer = services()["airflow-triggerer"]
    # Airflow 3's CLI: the triggerer's job row, on this container's hostname, must have a live heartbeat.
    check = triggerer["healthcheck"]["test"]
    assert " ".join(check) == "CMD airflow jobs check --job-type TriggererJob --local"
    assert "ports" not in triggerer, "the triggerer serves nothing to the host"
    assert triggerer["depends_on"] == {"airflow-init": {"condition": "service_completed_successfully"}}
    assert triggerer["profiles"] == services()["airflow-scheduler"]["profiles"]
    assert triggerer["build"] == services()["airflow-scheduler"]["build"]


def test_airflow_image_holds_the_pinned_lock_and_the_dags() -> None:
    dockerfile = (ROOT / "infrastructure" / "airflow" / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes" in dockerfile
    assert "COPY infrastructure/airflow/requirements.lock" in dockerfile
    assert "COPY orchestration/dags /opt/airflow/dags" in dockerfile
    lock = (ROOT / "infrastructure" / "airflow" / "requirements.lock").read_text(encoding="utf-8")
    for package in ("apache-airflow==", "apache-airflow-providers-http==", "psycopg==", "asyncpg=="):
        assert f"\n{package}" in lock, package
    # api-server, dag-processor and `jobs check --job-type DagProcessorJob` exist from Airflow 3 on.
    assert re.search(r"^apache-airflow==3\.", lock, re.MULTILINE)
