"""docker-compose.yml and the Dockerfile: valid by the Compose Specification, and the right shape.

`compose_spec` (PyPI) is a strict Compose Specification parser: unknown keys, bad durations,
bad image references, bad port syntax and unknown depends_on conditions are errors. Like
`docker compose`, we interpolate `${...}` from the env file first and parse the result.
"""

from __future__ import annotations

import json
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import compose_spec
import pytest
import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROXY_PORT = 13000

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, $VAR, $$.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset or empty: compose refuses to start."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation (compose-spec interpolation.md) of one string."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"] or "", match["arg"] or ""
        is_set = name in env
        has_value = bool(env.get(name))
        present = has_value if op.startswith(":") else is_set
        if op.endswith("-"):
            return env[name] if present else arg
        if op.endswith("?"):
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op.endswith("+"):
            return arg if present else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(replace, value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def proxy_variant(text: str) -> str:
    """The commented gRPC-proxy variant, made the way the compose file's header says (sed)."""
    lines = [line for line in text.splitlines() if not line.rstrip().endswith("#~direct")]
    return "\n".join(re.sub(r"^( *)#~ ", r"\1", line) for line in lines) + "\n"


def example_env(**overrides: str) -> dict[str, str]:
    """`.env.example` as a user fills it in: a generated password and API token."""
    env = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    env.update(POSTGRES_PASSWORD=secrets.token_hex(24), STUDYD_API_TOKEN=secrets.token_hex(32))
    env.update(overrides)
    return env


def load_compose(text: str, env: dict[str, str]) -> dict[str, Any]:
    """Parse (YAML anchors and merge keys), interpolate, then validate with compose_spec."""
    raw = yaml.safe_load(text)
    project = compose_spec.PyCompose.from_json(json.dumps(interpolate_tree(raw, env)))
    project.validate()
    project.to_spec()  # the pydantic model of the whole specification, too
    return project.to_dict()


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return example_env()


@pytest.fixture(scope="module")
def compose(compose_text, env) -> dict[str, Any]:
    return load_compose(compose_text, env)


@pytest.fixture(scope="module")
def compose_with_proxy(compose_text, env) -> dict[str, Any]:
    return load_compose(proxy_variant(compose_text), env)


def health_command(service: dict[str, Any]) -> str:
    """A health check's command as one string (the parser turns CMD-SHELL into a plain string)."""
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def workers(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in project["services"].items() if name.startswith("worker")}


def test_the_validator_rejects_what_compose_would():
    good = "services:\n  db:\n    image: postgres:17\n"
    load_compose(good, {})
    for bad in (
        "services:\n  db:\n    imagee: postgres:17\n",
        "services:\n  db:\n    image: postgres:17\n    healthcheck:\n      interval: soon\n",
        "services:\n  db:\n    image: x\n    depends_on:\n      a:\n        condition: healthy\n",
        "services:\n  db:\n    image: x\n    ports: ['80:80:80:80']\n",
    ):
        with pytest.raises(ValueError):
            load_compose(bad, {})


def test_compose_has_db_api_workers_and_dashboard(compose):
    names = set(compose["services"])
    assert {"db", "api", "dashboard"} <= names
    assert len(workers(compose)) >= 1
    assert "proxy" not in names, "the proxy is the commented variant, off by default"


def test_db_is_postgres_with_a_named_volume_and_a_pg_isready_health_check(compose):
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert health_command(db).startswith("pg_isready")
    named = {v.split(":")[0] if isinstance(v, str) else v["source"] for v in db["volumes"]}
    assert named & set(compose["volumes"]), "PostgreSQL's data must live on a named volume"


def test_api_serves_without_workers_after_the_db_is_healthy(compose):
    api = compose["services"]["api"]
    command = api["command"]
    assert command[:2] == ["serve", "--no-workers"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert "http://127.0.0.1:8000/healthz" in health_command(api)


def test_every_service_runs_the_one_studyd_image(compose):
    images = {compose["services"][name]["image"] for name in compose["services"] if name != "db"}
    assert images == {"studyd:latest"}
    assert compose["services"]["api"]["build"]["context"] == "."


def test_each_worker_reserves_its_own_nvidia_gpu(compose):
    seen: list[str] = []
    for name, worker in workers(compose).items():
        assert worker["command"][:3] == ["worker", "--device", "cuda:0"], name
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        assert devices[0]["driver"] == "nvidia"
        assert "gpu" in devices[0]["capabilities"]
        seen += devices[0]["device_ids"]
        assert worker["depends_on"]["api"]["condition"] == "service_healthy"
    assert len(seen) == len(set(seen)) >= 2, f"one service per GPU index, got {seen}"


def test_api_workers_and_dashboard_share_one_database(compose, env):
    url = (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
        f"@db:5432/{env['POSTGRES_DB']}"
    )
    services = compose["services"]
    for name in ["api", *workers(compose)]:
        assert services[name]["environment"]["STUDYD_DATABASE_URL"] == url, name
    # `studyd dashboard` runs optuna-dashboard on STUDYD_DATABASE_URL.
    assert services["dashboard"]["command"][0] == "dashboard"
    assert services["dashboard"]["environment"]["STUDYD_DATABASE_URL"] == url


def is_secret_reference(value: str) -> bool:
    """`${VAR}`, `${VAR:?error}` or `${VAR:-}`: taken from .env, never a default written here."""
    return re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*|:?-)?\}", value) is not None


def test_no_password_is_written_in_the_compose_file_or_the_example_env(compose_text):
    raw = yaml.safe_load(proxy_variant(compose_text))
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|TOKEN|SECRET", key):
                assert is_secret_reference(str(value)), f"{name}.{key}: {value}"
    userinfos = re.findall(r"://([^@\n]+)@", compose_text)
    assert userinfos, "the database URL should be in the compose file"
    for userinfo in userinfos:
        user_end = userinfo.index("}") + 1 if userinfo.startswith("${") else userinfo.index(":")
        password = userinfo[user_end + 1 :]
        assert is_secret_reference(password), f"literal password in a URL: {userinfo}"
    example = dotenv_values(ROOT / ".env.example")
    assert example["POSTGRES_PASSWORD"] == ""
    assert example["STUDYD_API_TOKEN"] == ""
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_compose_refuses_to_start_without_a_password(compose_text):
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        load_compose(compose_text, example_env(POSTGRES_PASSWORD=""))


def test_proxy_variant_routes_every_worker_through_the_grpc_proxy(compose_with_proxy, env):
    services = compose_with_proxy["services"]
    proxy = services["proxy"]
    assert proxy["image"] == services["api"]["image"]
    assert proxy["command"] == ["proxy", "--host", "0.0.0.0", "--port", str(PROXY_PORT)]
    assert str(PROXY_PORT) in health_command(proxy)
    assert proxy["environment"]["STUDYD_DATABASE_URL"].endswith(f"@db:5432/{env['POSTGRES_DB']}")
    for name, worker in workers(compose_with_proxy).items():
        command = worker["command"]
        assert command[command.index("--storage") + 1] == f"grpc://proxy:{PROXY_PORT}", name
        assert worker["depends_on"]["proxy"]["condition"] == "service_healthy"
        # The queue tables stay on the database itself; only Optuna's storage goes via the proxy.
        assert "STUDYD_DATABASE_URL" in worker["environment"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_runs_studyd_as_a_non_root_user():
    instructions = dockerfile_instructions()
    entrypoints = [arg for op, arg in instructions if op == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["studyd"]
    users = [arg for op, arg in instructions if op == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_pinned_versions_and_a_selectable_torch_build():
    instructions = dockerfile_instructions()
    args = {arg.split("=")[0] for op, arg in instructions if op == "ARG"}
    assert {"TORCH_INDEX_URL", "TORCH_VERSION"} <= args
    installs = [arg for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert installs and all("-c constraints.txt" in arg for arg in installs)
    assert any("$TORCH_INDEX_URL" in arg for arg in installs)
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    default = next(a for op, a in instructions if op == "ARG" and a.startswith("TORCH_VERSION="))
    assert default.split("=", 1)[1] == pinned[1].split("+")[0]


def test_dockerfile_copies_every_package_the_project_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {arg.split()[0].rstrip("/") for op, arg in dockerfile_instructions() if op == "COPY"}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    for source in copied:
        assert (ROOT / source).exists(), source
