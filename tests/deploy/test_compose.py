"""Static checks of the docker-compose deployment: docker-compose.yml, docker/ and the files they
point at. No Docker, no network: each test reads files and names what a real
``docker compose up`` would trip over (a missing file, a port open to the world, a password in
git, two places that must agree and do not).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"
ENV_EXAMPLE = REPO / "docker" / "env.example"
POSTGRES_INIT = REPO / "docker" / "postgres" / "init-databases.sh"
AIRFLOW_INIT = REPO / "docker" / "airflow-init.sh"
PLATFORM_YAML = REPO / "conf" / "platform.yaml"
MAKEFILE = REPO / "Makefile"

AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
EXPECTED_SERVICES = (
    "postgres",
    "airflow-init",
    *AIRFLOW_SERVICES,
    "spark-master",
    "mlflow",
    "object-store",
    "object-store-init",
    "driver",
)
# Host port of each UI (all on 127.0.0.1).
EXPECTED_UI_PORTS = {"api-server": 8080, "spark-master": 8081, "mlflow": 5000, "object-store": 9001}
# Environment variables through which the deployment configures lakescore.
LAKESCORE_ENV = re.compile(r"^(LAKESCORE_\w+|MLFLOW_TRACKING_URI)$")
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY|CREDENTIALS?)$", re.IGNORECASE)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $${...} is literal.
COMPOSE_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
REQUIRED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")
URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/\s:@]+):([^@\s/]*)@")
PLATFORM_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


# --------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    assert isinstance(data.get("services"), dict), "docker-compose.yml has no services mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def tokens(value: Any) -> list[str]:
    """A command / entrypoint / healthcheck test as a list of words."""
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    words = [str(v) for v in value]
    if words and words[0] in ("CMD", "CMD-SHELL"):
        kind, words = words[0], words[1:]
        if kind == "CMD-SHELL":
            words = shlex.split(" ".join(words))
    return words


def option(words: list[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value``."""
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML tree (comments are not part of it)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(k) + strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def volume_entries(service: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(type, source, target, read_only) of every volume of a service."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = parts[0], parts[1]
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            source, target = entry.get("source", ""), entry["target"]
            read_only = bool(entry.get("read_only"))
            kind = entry.get("type", "volume")
        out.append((kind, source, target, read_only))
    return out


def binds(service: dict[str, Any]) -> dict[str, str]:
    """container path -> repo-relative host path of a service's bind mounts."""
    return {
        target: posixpath.normpath(source)
        for kind, source, target, _ in volume_entries(service)
        if kind == "bind"
    }


def named_volume_at(service: dict[str, Any], path: str) -> str | None:
    """The writable named volume whose mount contains ``path`` (None when there is none)."""
    best: tuple[int, str] | None = None
    for kind, source, target, read_only in volume_entries(service):
        mounted = kind == "volume" and not read_only and is_under(path, target)
        if mounted and (best is None or len(target) > best[0]):
            best = (len(target), source)
    return best[1] if best else None


def is_under(path: str, root: str) -> bool:
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def interpolate(text: str, env: dict[str, str]) -> str:
    """lakescore's ``${VAR}`` / ``${VAR:-default}`` semantics against a container's env."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} is neither set by the service nor defaulted")

    return COMPOSE_REF.sub(replace, text)


def neutralise(text: str) -> str:
    """Compose references -> plain words, so URLs around them parse: a required reference
    becomes ``REQUIRED_<VAR>``, a defaulted one its default, a bare ``${VAR}`` ``UNSET_<VAR>``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if op in ("?", ":?"):
            return f"REQUIRED_{name}"
        if op in ("-", ":-"):
            return arg
        return f"UNSET_{name}"

    return COMPOSE_REF.sub(replace, text)


def ui_port(service: dict[str, Any]) -> int | None:
    """The port of the service's web UI / API (what a published port must lead to)."""
    words = tokens(service.get("command"))
    port = option(words, "--webui-port") or option(words, "--port")
    console = option(words, "--console-address")  # MinIO: ":9001"
    port = port or (console.rsplit(":", 1)[-1] if console else None)
    return int(port) if port else None


def listening_ports(service: dict[str, Any]) -> set[int]:
    """Ports the service's own command line (or config) makes it listen on."""
    words = tokens(service.get("command"))
    ports = {int(p) for flag in ("--port", "--webui-port") if (p := option(words, flag))}
    ports |= {  # MinIO: --address :9000 --console-address :9001
        int(a.rsplit(":", 1)[-1])
        for flag in ("--address", "--console-address")
        if (a := option(words, flag))
    }
    if env_of(service).get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "").lower() == "true":
        ports.add(8974)  # [scheduler] scheduler_health_check_server_port (default)
    return ports


def services_running(services: dict[str, Any], cls: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if cls in tokens(s.get("command"))}


def master_url(services: dict[str, Any]) -> str:
    masters = services_running(services, "org.apache.spark.deploy.master.Master")
    assert list(masters) == ["spark-master"], f"expected one spark-master, got {list(masters)}"
    words = tokens(masters["spark-master"]["command"])
    host, port = option(words, "--host"), option(words, "--port")
    assert host == "spark-master", f"spark-master binds --host {host!r}, not its service name"
    assert port, "spark-master's command sets no --port"
    return f"spark://{host}:{port}"


def platform_refs() -> set[str]:
    return set(PLATFORM_REF.findall(PLATFORM_YAML.read_text()))


def env_example() -> tuple[dict[str, str], dict[str, str]]:
    """(set, commented-out) ``NAME=value`` entries of docker/env.example."""
    active, optional = {}, {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line):
            active[m.group(1)] = m.group(2).strip()
        elif m := re.match(r"^#\s*([A-Z_][A-Z0-9_]*)=(.*)$", line):
            optional[m.group(1)] = m.group(2).strip()
    return active, optional


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    name: str | None
    base: str
    workdir: str = "/"
    # (source, absolute destination, --from stage or None)
    copies: list[tuple[str, str, str | None]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)


def logical_lines(text: str) -> list[str]:
    """Dockerfile / Makefile lines with backslash continuations joined, comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            out.append(current)
        current = ""
    return out


def parse_dockerfile() -> list[Stage]:
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for line in logical_lines(DOCKERFILE.read_text()):
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            (stages[-1].args if stages else global_args)[name] = default
        elif instruction == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append(Stage(name=name, base=base))
        elif instruction == "WORKDIR":
            stages[-1].workdir = posixpath.join(stages[-1].workdir, rest)
        elif instruction == "RUN":
            stages[-1].runs.append(rest)
        elif instruction in ("COPY", "ADD"):
            words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next(
                (f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None
            )
            *sources, dest = paths
            dest = posixpath.join(stages[-1].workdir, dest)
            for source in sources:
                into_dir = dest.endswith("/") or len(sources) > 1
                target = posixpath.join(dest, posixpath.basename(source)) if into_dir else dest
                if source_stage is None and (REPO / source).is_dir():
                    target = dest
                stages[-1].copies.append((source, posixpath.normpath(target), source_stage))
    assert stages, "docker/Dockerfile has no FROM"
    return stages


def image_paths(stage: Stage) -> dict[str, str]:
    """container path -> repo path of everything the stage copies from the build context."""
    return {dest: posixpath.normpath(src) for src, dest, from_ in stage.copies if from_ is None}


def project_dir(stage: Stage) -> str:
    dests = [dest for src, dest, from_ in stage.copies if src == "pyproject.toml" and not from_]
    assert dests, "the Dockerfile's final stage does not copy pyproject.toml"
    return posixpath.dirname(dests[0])


def mvn_command(command: str) -> list[str]:
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if words and words[0] == "mvn":
            return words
    return []


def mvn_parts(words: list[str]) -> tuple[str | None, list[str], dict[str, str]]:
    """(-f pom, goals, -D properties) of an mvn command line."""
    pom = option(words, "-f") or option(words, "--file")
    goals = [w for w in words[1:] if ":" in w and not w.startswith("-")]
    props = dict(w[2:].split("=", 1) for w in words if w.startswith("-D") and "=" in w)
    return pom, goals, props


def makefile_recipe(target: str) -> list[str]:
    lines = MAKEFILE.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{target}:")), None)
    assert start is not None, f"the Makefile has no {target} rule"
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line)
    return logical_lines("\n".join(recipe))


# --------------------------------------------------------------------------- shape


def test_compose_has_every_service_with_an_image_or_a_build(services):
    missing = [name for name in EXPECTED_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks the services {missing}"
    workers = services_running(services, "org.apache.spark.deploy.worker.Worker")
    assert len(workers) >= 2, f"expected two spark workers, found {sorted(workers)}"
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name}: neither image nor build"


def test_build_context_and_dockerfile_exist_and_make_one_image(services):
    builds = {name: s for name, s in services.items() if s.get("build")}
    assert builds, "no service builds docker/Dockerfile"
    for name, service in builds.items():
        build = service["build"]
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "")
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert (context / dockerfile).resolve() == DOCKERFILE, (
            f"{name}: builds {context / dockerfile}, not docker/Dockerfile"
        )
    tags = {s.get("image") for s in builds.values()}
    assert len(tags) == 1 and None not in tags, f"one image, one tag expected: {tags}"
    python_services = [*AIRFLOW_SERVICES, "airflow-init", "spark-master", "mlflow"]
    assert all(n in builds for n in python_services), "every Python service uses the one image"


def test_bind_mounts_are_read_only_repo_paths_and_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for kind, source, target, read_only in volume_entries(service):
            if kind == "bind":
                host = (REPO / source).resolve()
                assert host.is_relative_to(REPO), f"{name}: bind mount {source} is outside the repo"
                assert host.exists(), f"{name}: bind-mounted {source} does not exist in the repo"
                assert read_only, f"{name}: bind mount {source}:{target} is not read-only"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"


def test_repo_files_named_in_commands_exist(services):
    final = parse_dockerfile()[-1]
    referenced: set[str] = set()
    for name, service in services.items():
        paths = {**image_paths(final), **binds(service)}
        healthcheck = service.get("healthcheck") or {}
        words = [
            *tokens(service.get("entrypoint")),
            *tokens(service.get("command")),
            *tokens(healthcheck.get("test")),
        ]
        for word in words:
            for path in re.findall(r"/[\w./-]+", word):
                prefix = max((p for p in paths if is_under(path, p)), key=len, default=None)
                if prefix is None:
                    continue  # not a file from this repository (e.g. /warehouse/...)
                repo_path = posixpath.join(paths[prefix], posixpath.relpath(path, prefix))
                assert (REPO / repo_path).is_file(), (
                    f"{name}: runs {path}, but {repo_path} does not exist in the repo"
                )
                referenced.add(posixpath.normpath(repo_path))
    assert {"docker/airflow-init.sh", "docker/healthcheck.py"} <= referenced, referenced


# --------------------------------------------------------------------------- ports


def test_published_ports_are_unique_and_loopback_only(services):
    seen: dict[int, str] = {}
    published: dict[str, int] = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                ip, host, target = port.get("host_ip"), port.get("published"), port["target"]
            else:
                parts = str(port).split("/")[0].split(":")
                assert len(parts) == 3, f"{name}: port {port!r} does not name a host IP"
                ip, host, target = parts
            assert ip == "127.0.0.1", f"{name}: port {port!r} is not bound to 127.0.0.1"
            assert host is not None, f"{name}: port {port!r} has no fixed host port"
            assert int(host) not in seen, f"{name} and {seen.get(int(host))} publish {host}"
            seen[int(host)] = name
            published[name] = int(host)
            assert int(target) == ui_port(service), (
                f"{name}: publishes container port {target}, its UI listens on {ui_port(service)}"
            )
    assert published == EXPECTED_UI_PORTS, f"published UI ports {published}"


def test_healthchecks_probe_ports_the_services_listen_on(services):
    for name in ("postgres", "api-server", "scheduler", "spark-master", "mlflow", "driver"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for name, service in services.items():
        words = tokens((service.get("healthcheck") or {}).get("test"))
        for word in words:
            if word.startswith("http://localhost:"):
                port = urlsplit(word).port
                assert port in listening_ports(service), (
                    f"{name}: healthcheck probes port {port}, service listens on "
                    f"{sorted(listening_ports(service))}"
                )
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if (cond or {}).get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )


# --------------------------------------------------------------------------- variables, secrets


def test_required_variables_are_documented_in_env_example(compose):
    active, optional = env_example()
    refs = [m.groups() for s in strings(compose) for m in COMPOSE_REF.finditer(s)]
    required = {name for name, op, _ in refs if op in (None, "?", ":?")}
    assert required, "docker-compose.yml requires no variables (where do the secrets come from?)"
    undocumented = sorted(required - set(active))
    assert not undocumented, f"required but not in docker/env.example: {undocumented}"
    used = {name for name, _, _ in refs}
    stale = sorted((set(active) | set(optional)) - used)
    assert not stale, f"docker/env.example documents variables compose never reads: {stale}"
    for name, op, default in refs:
        if op in (":-", "-") and name in optional:
            assert optional[name] == default, (
                f"env.example says {name}={optional[name]}, compose defaults to {default}"
            )


def test_no_secret_values_are_committed(compose, services):
    for name, service in services.items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_REF.fullmatch(value), (
                    f"{name}: {key} must be a required ${{VAR:?...}} reference, got {value!r}"
                )
        words = tokens(service.get("command"))
        for i, word in enumerate(words[:-1]):
            if re.fullmatch(r"--?\w*(password|secret|token)\w*", word, re.IGNORECASE):
                assert REQUIRED_REF.fullmatch(words[i + 1]), f"{name}: literal {word} value"
    urls_with_users = 0
    for text in strings(compose):
        for user, password in URL_USERINFO.findall(neutralise(text)):
            urls_with_users += 1
            assert password.startswith("REQUIRED_"), (
                f"URL for {user!r}: the password must be a required ${{VAR:?...}} reference"
            )
        for var, op, _default in COMPOSE_REF.findall(text):
            if SECRET_NAME.search(var):
                assert op in ("?", ":?"), f"${{{var}}} must be required (no default, op {op!r})"
    assert urls_with_users >= 2, "the database URLs were not recognised"
    active, optional = env_example()
    for key, value in {**active, **optional}.items():
        if SECRET_NAME.search(key):
            assert value == "", f"docker/env.example ships a value for {key}"
    for path in sorted((REPO / "docker").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text()
        for user, password in URL_USERINFO.findall(text):
            assert password.startswith("$"), f"{path.name}: URL for {user!r} embeds a password"
        assert not re.search(r"PASSWORD\s+'", text), f"{path.name}: a literal SQL password"
    for line in logical_lines(DOCKERFILE.read_text()):
        if m := re.match(r"^\s*(ARG|ENV)\s+(\w+)", line):
            assert not SECRET_NAME.search(m.group(2)), f"Dockerfile bakes in {m.group(2)}"


def test_env_file_stays_out_of_git_and_out_of_the_image():
    def ignored(path: str, patterns: list[str]) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").strip("/")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(
                fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern)
                for p in prefixes
            ):
                verdict = not negate
        return verdict

    gitignore = [
        line.strip()
        for line in (REPO / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored(".env", gitignore), ".gitignore must ignore .env (compose reads secrets there)"
    dockerignore = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret_or_bulk in (".env", ".venv/bin/python", "var/jars/x.jar", ".git/config"):
        assert ignored(secret_or_bulk, dockerignore), f"the build context includes {secret_or_bulk}"
    for stage in parse_dockerfile():
        for source, _, from_ in stage.copies:
            if from_ is None:
                assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
                assert not ignored(source.rstrip("/"), dockerignore), (
                    f"Dockerfile copies {source}, which Dockerfile.dockerignore excludes"
                )


# --------------------------------------------------------------------------- lakescore config


def test_lakescore_env_vars_are_ones_the_config_reads(services):
    reads = platform_refs()
    # LAKESCORE_CONF picks the config folder itself (lakescore.config.default_conf_dir).
    config_py = (REPO / "jobs" / "lakescore" / "config.py").read_text()
    # read by config.py itself (the driver's token never appears in a config file)
    for name in ("LAKESCORE_CONF", "LAKESCORE_DRIVER_URL", "LAKESCORE_DRIVER_TOKEN"):
        if f'"{name}"' in config_py:
            reads.add(name)
    set_somewhere = set()
    for name, service in services.items():
        for key in env_of(service):
            if LAKESCORE_ENV.match(key):
                set_somewhere.add(key)
                assert key in reads, f"{name} sets {key}, which conf/platform.yaml never reads"
    assert {"LAKESCORE_SPARK_PROFILE", "MLFLOW_TRACKING_URI", "LAKESCORE_WAREHOUSE"} <= (
        set_somewhere
    )


def test_airflow_spark_master_is_the_compose_spark_master(services):
    """The Spark profile the Airflow services select resolves to spark://spark-master:<port>."""
    platform = yaml.safe_load(PLATFORM_YAML.read_text())
    profiles = platform["spark"]["profiles"]
    url = master_url(services)
    for name in AIRFLOW_SERVICES:
        env = env_of(services[name])
        profile = env.get("LAKESCORE_SPARK_PROFILE")
        assert profile == "cluster", f"{name}: LAKESCORE_SPARK_PROFILE={profile!r}"
        assert profile in profiles, (
            f"conf/platform.yaml has no spark profile {profile!r} ({name} selects it)"
        )
        master, current, seen = None, profile, set()
        while current is not None and master is None:
            assert current not in seen, f"spark profile {profile!r}: extends cycle"
            seen.add(current)
            master = profiles[current].get("master")
            current = profiles[current].get("extends")
        assert master, f"spark profile {profile!r} has no master"
        assert interpolate(master, env) == url, (
            f"{name}: profile {profile!r} gives master {interpolate(master, env)}, "
            f"the compose cluster is {url}"
        )
    for name, worker in services_running(services, "org.apache.spark.deploy.worker.Worker").items():
        assert url in tokens(worker["command"]), f"{name} does not register with {url}"


def test_spark_hosts_are_resolvable_service_names(services):
    # Executors connect back to their Spark driver (the warm driver, or the scheduler where a
    # task falls back to spark-submit); workers and the master advertise themselves by hostname.
    spark_nodes = {
        "scheduler",
        "driver",
        "spark-master",
        *services_running(services, "org.apache.spark.deploy.worker.Worker"),
    }
    for name in spark_nodes:
        env = env_of(services[name])
        assert env.get("SPARK_LOCAL_HOSTNAME") == name, (
            f"{name}: SPARK_LOCAL_HOSTNAME must be its service name (resolvable on the network)"
        )
    for name, service in services.items():
        if "hostname" in service:
            assert service["hostname"] == name, f"{name}: hostname {service['hostname']!r}"


def test_airflow_services_share_one_configuration(services):
    names = ["airflow-init", *AIRFLOW_SERVICES]
    envs = {name: env_of(services[name]) for name in names}
    keys = {k for env in envs.values() for k in env if k.startswith("AIRFLOW__")}
    for key in sorted(keys):
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1, f"Airflow services disagree on {key}: {values}"
    env = envs["scheduler"]
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert env.get(key), f"Airflow services do not set {key}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "api-server", f"execution API at {api.hostname}, not api-server"
    assert api.port in listening_ports(services["api-server"]), f"execution API port {api.port}"
    assert api.path == "/execution/", f"execution API path {api.path}"
    for name in AIRFLOW_SERVICES:
        depends = services[name].get("depends_on") or {}
        init = (depends.get("airflow-init") or {}).get("condition")
        assert init == "service_completed_successfully", f"{name} does not wait for airflow-init"


def test_airflow_init_migrates_and_creates_the_pool_without_fetching(services):
    init = services["airflow-init"]
    assert str(init.get("restart", "no")) == "no", "airflow-init must run once, not restart"
    assert "/opt/lakescore/docker/airflow-init.sh" in tokens(init["command"])
    code = [
        line.strip()
        for line in logical_lines(AIRFLOW_INIT.read_text())
        if not line.strip().startswith("#")
    ]
    commands = [line.split()[:3] for line in code]
    assert ["airflow", "db", "migrate"] in commands, "airflow-init does not migrate the DB"
    assert ["airflow", "pools", "set"] in commands, "airflow-init creates no pool"
    assert any("spark_pool" in line for line in code), "pool name must come from platform.yaml"
    script = "\n".join(code)
    assert not re.search(r"\b(pip install|uv (sync|pip)|curl|wget|mvn|apt-get)\b", script)
    passwords_file = env_of(init)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    for name in ("airflow-init", "api-server"):
        assert named_volume_at(services[name], passwords_file) == "airflow-auth", (
            f"{name}: {passwords_file} is not on the shared airflow-auth volume"
        )


def test_airflow_mounts_match_airflow_and_lakescore_paths(services):
    final = parse_dockerfile()[-1]
    project = project_dir(final)
    operators = (REPO / "plugins" / "lakescore_airflow" / "operators.py").read_text()
    assert 'JOBS_DIR = Path(__file__).resolve().parents[2] / "jobs"' in operators, (
        "where does the DAG find jobs/score.py and jobs/validate.py?"
    )
    assert (REPO / "jobs" / "score.py").is_file() and (REPO / "jobs" / "validate.py").is_file()
    for name in ["airflow-init", *AIRFLOW_SERVICES]:
        env, mounted = env_of(services[name]), binds(services[name])
        expected = {
            env["AIRFLOW__CORE__DAGS_FOLDER"]: "dags",
            env["AIRFLOW__CORE__PLUGINS_FOLDER"]: "plugins",
            env["LAKESCORE_CONF"]: "conf",
            # operators.py: <plugins folder>/../jobs/{score,validate}.py
            posixpath.join(posixpath.dirname(env["AIRFLOW__CORE__PLUGINS_FOLDER"]), "jobs"): "jobs",
        }
        for target, source in expected.items():
            assert mounted.get(target) == source, f"{name}: {target} is not ./{source}"
        # platform.yaml's relative paths (jars_dir) resolve against the parent of conf/.
        assert posixpath.dirname(env["LAKESCORE_CONF"]) == project, (
            f"{name}: LAKESCORE_CONF={env['LAKESCORE_CONF']} is not {project}/conf"
        )


# platform.yaml settings lakescore writes below (relative ones resolve against the project).
WRITTEN_SETTINGS = (
    ("warehouse",),
    ("var_dir",),
    ("mlflow", "artifact_root"),
    ("openlineage", "file"),
)


def test_paths_lakescore_writes_live_on_named_volumes(services):
    """Not the read-only project dir, not the container's throw-away layer."""
    platform = yaml.safe_load(PLATFORM_YAML.read_text())
    project = project_dir(parse_dockerfile()[-1])
    checked = 0
    for name in ["airflow-init", *AIRFLOW_SERVICES]:
        env = env_of(services[name])
        for keys in WRITTEN_SETTINGS:
            value: Any = platform
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue
            value = interpolate(str(value), env)
            checked += 1
            if "://" in value:  # on the object store (test_object_store_is_the_warehouse...)
                continue
            path = posixpath.join(project, value)
            assert named_volume_at(services[name], path), (
                f"{name}: platform.yaml {'.'.join(keys)} is {path}, not on a writable named volume"
            )
    assert checked >= 3 * (1 + len(AIRFLOW_SERVICES)), "platform.yaml paths were not found"
    for name, service in services.items():
        env = env_of(service)
        for key in ("LAKESCORE_WAREHOUSE", "LAKESCORE_VAR", "LAKESCORE_MLFLOW_ARTIFACTS"):
            if key in env and "://" not in env[key]:
                assert named_volume_at(service, env[key]), (
                    f"{name}: {key}={env[key]} is not on a writable named volume"
                )


OBJECT_STORE_CLIENT = (
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "LAKESCORE_S3_PATH_STYLE",
)


def object_store_endpoint(services: dict[str, Any]) -> str:
    store = services["object-store"]
    words = tokens(store["command"])
    assert words[:1] == ["server"], f"object-store runs {words[:1]}, not a MinIO server"
    port = (option(words, "--address") or ":9000").rsplit(":", 1)[-1]
    return f"http://{store.get('hostname', 'object-store')}:{port}"


def test_object_store_is_the_warehouse_and_artifact_store(services):
    """Every container that runs lakescore or MLflow reaches the same object store with the
    same settings; the warehouse and MLflow's artifacts live in the bucket the init creates."""
    endpoint = object_store_endpoint(services)
    workers = services_running(services, "org.apache.spark.deploy.worker.Worker")
    clients = ["airflow-init", *AIRFLOW_SERVICES, *workers, "mlflow", "object-store-init"]
    reference = {k: env_of(services["scheduler"]).get(k) for k in OBJECT_STORE_CLIENT}
    assert reference["AWS_ENDPOINT_URL"] == endpoint, reference
    assert reference["LAKESCORE_S3_PATH_STYLE"] == "true", "MinIO needs path-style addressing"
    for name in clients:
        env = env_of(services[name])
        assert {k: env.get(k) for k in OBJECT_STORE_CLIENT} == reference, name
    assert env_of(services["mlflow"]).get("MLFLOW_S3_ENDPOINT_URL") == endpoint
    # the credentials are the store's own root credentials, from .env
    store_env = env_of(services["object-store"])
    assert store_env["MINIO_ROOT_USER"] == reference["AWS_ACCESS_KEY_ID"]
    assert store_env["MINIO_ROOT_PASSWORD"] == reference["AWS_SECRET_ACCESS_KEY"]
    assert named_volume_at(services["object-store"], "/data"), "the store's data is not kept"
    # the bucket: created by object-store-init, holds the warehouse and the artifacts
    init_words = tokens(services["object-store-init"]["command"])
    script = next(w for w in init_words if w.endswith(".py"))
    assert (REPO / "docker" / posixpath.basename(script)).is_file(), script
    bucket = init_words[-1]
    warehouse = env_of(services["scheduler"])["LAKESCORE_WAREHOUSE"]
    assert warehouse.startswith(f"s3://{bucket}/"), warehouse
    for name in [*AIRFLOW_SERVICES, *workers]:
        assert env_of(services[name]).get("LAKESCORE_WAREHOUSE") == warehouse, name
        waits = (services[name].get("depends_on") or {}).get("object-store-init") or {}
        assert waits.get("condition") == "service_completed_successfully", name
    init_waits = services["object-store-init"]["depends_on"]["object-store"]
    assert init_waits["condition"] == "service_healthy"


def test_driver_scratch_is_shared_with_the_workers_at_the_same_path(services):
    """With the warehouse on the object store, a first publish stages its rows under
    LAKESCORE_VAR (lakescore.config staging_root): executors must see the driver's path."""
    var = env_of(services["scheduler"])["LAKESCORE_VAR"]
    volume = named_volume_at(services["scheduler"], var)
    assert volume, f"LAKESCORE_VAR={var} is not on a named volume"
    workers = services_running(services, "org.apache.spark.deploy.worker.Worker")
    assert workers, "no Spark workers"
    for name in workers:
        assert named_volume_at(services[name], var) == volume, (
            f"{name} does not mount {volume} at {var}"
        )


def test_mlflow_service_and_the_uri_everyone_uses(services):
    mlflow = services["mlflow"]
    words = tokens(mlflow["command"])
    assert words[:2] == ["mlflow", "server"], f"mlflow runs {words[:2]}"
    port = option(words, "--port") or "5000"
    assert option(words, "--host") == "0.0.0.0", "mlflow server must listen beyond loopback"
    expected = f"http://mlflow:{port}"
    workers = services_running(services, "org.apache.spark.deploy.worker.Worker")
    for name in [*AIRFLOW_SERVICES, *workers]:
        uri = env_of(services[name]).get("MLFLOW_TRACKING_URI")
        assert uri == expected, f"{name}: MLFLOW_TRACKING_URI={uri!r}, expected {expected}"
    allowed = (option(words, "--allowed-hosts") or "").split(",")
    assert f"mlflow:{port}" in allowed, "mlflow rejects the Host header the other services send"
    destination = option(words, "--artifacts-destination")
    bucket = tokens(services["object-store-init"]["command"])[-1]
    assert destination == f"s3://{bucket}/mlflow-artifacts", destination
    for name in AIRFLOW_SERVICES:
        assert env_of(services[name])["LAKESCORE_MLFLOW_ARTIFACTS"] == destination, name


def test_both_databases_live_on_the_postgres_service_and_are_created(services):
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:15([.-].*)?", postgres["image"]), postgres["image"]
    assert env_of(postgres).get("POSTGRES_PASSWORD"), "postgres has no POSTGRES_PASSWORD"
    init_targets = {t: s for t, s in binds(postgres).items()}
    scripts = [s for t, s in init_targets.items() if t.startswith("/docker-entrypoint-initdb.d/")]
    assert scripts == ["docker/postgres/init-databases.sh"], scripts
    sql = POSTGRES_INIT.read_text()
    databases = dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))
    roles = set(re.findall(r"CREATE ROLE (\w+) LOGIN", sql))
    for var in re.findall(r"\\getenv \w+ (\w+)", sql):
        assert var in env_of(postgres), f"init script reads {var}; postgres service lacks it"
    mlflow_words = tokens(services["mlflow"]["command"])
    backend = option(mlflow_words, "--backend-store-uri") or env_of(services["mlflow"]).get(
        "MLFLOW_BACKEND_STORE_URI"
    )
    assert backend, "mlflow server has no backend store URI"
    urls = {
        "airflow": env_of(services["scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "mlflow": backend,
    }
    db_names = set()
    for what, url in urls.items():
        parts = urlsplit(neutralise(url))
        assert parts.scheme == "postgresql+psycopg2", f"{what}: {parts.scheme}"
        assert parts.hostname == "postgres" and (parts.port or 5432) == 5432, f"{what}: {url}"
        db = parts.path.lstrip("/")
        assert databases.get(db) == parts.username, (
            f"{what} uses database {db!r} as {parts.username!r}; the init script creates "
            f"{databases}"
        )
        assert parts.username in roles, f"{what}: role {parts.username} is never created"
        db_names.add(db)
    assert len(db_names) == 2, f"Airflow and MLflow must use two databases, got {db_names}"


# --------------------------------------------------------------------------- image


def test_dockerfile_builds_the_locked_environment():
    stages = parse_dockerfile()
    final = stages[-1]
    pyproject = (REPO / "pyproject.toml").read_text()
    python = re.search(r'requires-python\s*=\s*"==(\d+\.\d+)', pyproject)
    assert python, "pyproject.toml pins no Python minor version"
    assert final.base.startswith(f"python:{python.group(1)}-slim"), final.base
    runs = " ".join(final.runs)
    assert "openjdk-17-jre-headless" in runs, "the runtime image has no Java 17"
    copied = {src for src, _, from_ in final.copies if from_ is None}
    assert {"pyproject.toml", "uv.lock"} <= copied
    assert any(re.search(r"\buv sync --frozen\b(?!.*--no-install-project)", r) for r in final.runs)
    uv_make = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", MAKEFILE.read_text(), re.MULTILINE)
    assert uv_make, "the Makefile pins no UV_VERSION"
    assert final.args.get("UV_VERSION") == uv_make.group(1), "Dockerfile and Makefile pin other uvs"
    assert "uv==${UV_VERSION}" in runs


def test_dockerfile_fetches_the_jars_like_the_makefile():
    recipe = [line.replace("$(CURDIR)/", "") for line in makefile_recipe("var/jars/.installed")]
    make_mvn = [mvn_command(line) for line in recipe if mvn_command(line)]
    assert len(make_mvn) == 1, "expected one mvn command in the Makefile's var/jars rule"
    make_pom, make_goals, make_props = mvn_parts(make_mvn[0])
    assert make_pom == "jobs/jvm/pom.xml", f"Makefile builds {make_pom}"

    stages = parse_dockerfile()
    final = stages[-1]
    found = [(s, mvn_command(r)) for s in stages for r in s.runs if mvn_command(r)]
    assert len(found) == 1, "expected exactly one mvn command in docker/Dockerfile"
    stage, words = found[0]
    assert "maven" in " ".join(stage.runs), f"stage {stage.name} runs mvn without installing it"
    pom, goals, props = mvn_parts(words)
    pom_in_image = posixpath.join(stage.workdir, pom or "")
    copied_pom = {dest: src for src, dest, from_ in stage.copies if from_ is None}
    assert copied_pom.get(pom_in_image) == make_pom, (
        f"the Dockerfile runs mvn on {pom_in_image}, which is not a copy of {make_pom}"
    )
    assert goals == make_goals, f"mvn goals differ: Dockerfile {goals}, Makefile {make_goals}"
    assert props.get("includeGroupIds") == make_props.get("includeGroupIds"), (
        f"-DincludeGroupIds: Dockerfile {props.get('includeGroupIds')}, "
        f"Makefile {make_props.get('includeGroupIds')}"
    )
    other = {k: v for k, v in props.items() if k != "outputDirectory"}
    make_other = {k: v for k, v in make_props.items() if k != "outputDirectory"}
    assert other == make_other, f"mvn properties differ: {other} vs {make_other}"

    # The jars land where platform.yaml's spark.jars_dir points inside the image.
    jars_dir = yaml.safe_load(PLATFORM_YAML.read_text())["spark"]["jars_dir"]
    assert make_props["outputDirectory"] == jars_dir, "Makefile and platform.yaml disagree"
    output = posixpath.join(stage.workdir, props["outputDirectory"])
    expected = posixpath.join(project_dir(final), jars_dir)
    copied = [dest for src, dest, from_ in final.copies if from_ == stage.name and src == output]
    assert copied == [expected], (
        f"the runtime image should get {output} at {expected} (spark.jars_dir), got {copied}"
    )
