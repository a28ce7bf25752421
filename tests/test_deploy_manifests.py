"""The deployment files mean what the code reads: docker-compose.yml and deploy/k8s/.

Offline and without a cluster or a Docker engine, this proves that
- every Kubernetes manifest is valid against the API's schemas (kubernetes-validate's bundled
  copies, strict: an unknown or misspelt field fails), for the oldest and the newest Kubernetes
  version the validator ships, and kustomization.yaml lists every manifest;
- every `STATEGATE_*` variable the files name is a setting the processes read (so renaming a
  setting, or misspelling a variable, which pydantic-settings would silently ignore, fails here);
- the probes' paths are GET routes of the node's app (readiness /readyz, liveness /healthz),
  on the port the node listens on, and each pod's grace period covers its preStop pause plus
  STATEGATE_SHUTDOWN_SECONDS, after which the process ends itself (app/shutdown.py);
- each node pod advertises a stable URL: its own pod name under a headless Service;
- compose runs three brokers, one controller quorum naming all three, with distinct ids, each
  advertising its service name, and the nodes and services bootstrap from all three with
  replication factor 3.
It does not prove that a cluster accepts or runs them: nothing here starts one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices
from starlette.routing import Match

from stategate.app.config import Settings
from stategate.views.api import create_routes

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy/k8s"
COMPOSE = ROOT / "docker-compose.yml"
# The oldest and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
VARIABLE = re.compile(r"\bSTATEGATE_[A-Z0-9_]+")

Resource = dict[str, Any]


def manifests() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def resources() -> list[Resource]:
    return [doc for path in manifests() for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def of_kind(kind: str) -> list[Resource]:
    return [resource for resource in resources() if resource["kind"] == kind]


def containers(workload: Resource) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def strings(value: Any) -> Iterator[str]:
    """Every key and every string value in a parsed YAML document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def setting_variables() -> set[str]:
    """The environment variables the settings read: `STATEGATE_<FIELD>`, or a field's aliases."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def env(container: dict[str, Any]) -> dict[str, str]:
    """A container's plain `env` values, and those of the ConfigMaps it reads whole."""
    values: dict[str, str] = {}
    config_maps = {resource["metadata"]["name"]: resource["data"] for resource in of_kind("ConfigMap")}
    for source in container.get("envFrom", []):
        values.update(config_maps[source["configMapRef"]["name"]])
    values.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return values


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    assert resources(), "no manifests found"
    for resource in resources():
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifests()]


@pytest.mark.parametrize("where", ["deploy/k8s", "docker-compose.yml"])
def test_every_stategate_variable_is_a_setting(where: str) -> None:
    documents = resources() if where == "deploy/k8s" else [compose()]
    named = {match for text in strings(documents) for match in VARIABLE.findall(text)}
    assert {"STATEGATE_BROKER", "STATEGATE_REPLICATION_FACTOR"} <= named
    assert named - setting_variables() == set()


def test_probes_ask_real_routes_on_the_node_port() -> None:
    app = create_routes()

    def is_get_route(path: str) -> bool:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "path_params": {}}
        return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)

    assert not is_get_route("/no-such-path")  # the check can fail
    (node,) = containers(*of_kind("StatefulSet"))
    assert node["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert node["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = next(p["containerPort"] for p in node["ports"] if p["name"] == "http")
    assert int(env(node)["STATEGATE_PORT"]) == port
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = node[kind]["httpGet"]
        assert is_get_route(probe["path"]) and probe["port"] == "http", kind
    for name, service in compose().items():
        for url in re.findall(r"http://localhost:8080(/\w+)", str(service.get("healthcheck", ""))):
            assert is_get_route(url), name


def test_the_grace_period_covers_the_shutdown() -> None:
    for workload in [*of_kind("StatefulSet"), *of_kind("Deployment")]:
        spec = workload["spec"]["template"]["spec"]
        for container in spec["containers"]:
            default = Settings.model_fields["shutdown_seconds"].default
            shutdown = float(env(container).get("STATEGATE_SHUTDOWN_SECONDS", default))
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
            assert spec["terminationGracePeriodSeconds"] > pause + shutdown, workload["metadata"]["name"]


def test_each_node_advertises_its_own_stable_url() -> None:
    (nodes,) = of_kind("StatefulSet")
    (node,) = containers(nodes)
    variables = {item["name"]: item for item in node["env"]}
    assert variables["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert variables["STATEGATE_NODE_ID"]["value"] == "$(POD_NAME)"
    headless = nodes["spec"]["serviceName"]
    assert variables["STATEGATE_ADVERTISED_URL"]["value"].startswith(f"http://$(POD_NAME).{headless}.")
    (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == headless]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"]
    secret = variables["STATEGATE_CLUSTER_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"]
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind("PodDisruptionBudget")]
    assert nodes["spec"]["selector"]["matchLabels"] in budgets
    assert all(env(container)["STATEGATE_REPLICATION_FACTOR"] == "3" for container in containers(nodes))


def test_compose_runs_three_brokers_in_one_quorum() -> None:
    brokers = {name: s["environment"] for name, s in compose().items() if s.get("image", "").startswith("apache/kafka")}
    assert len(brokers) == 3
    assert len({env["KAFKA_NODE_ID"] for env in brokers.values()}) == 3
    voters = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in brokers.items()}
    for name, env in brokers.items():
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2


def test_compose_nodes_and_services_bootstrap_from_every_broker() -> None:
    brokers = {name for name, s in compose().items() if s.get("image", "").startswith("apache/kafka")}
    clients = {name: s for name, s in compose().items() if "STATEGATE_BROKER" in s.get("environment", {})}
    assert {s["command"][0] for s in clients.values()} == {"node", "services"}
    assert sum(s["command"][0] == "node" for s in clients.values()) == 3
    for name, service in clients.items():
        environment = service["environment"]
        assert set(environment["STATEGATE_BROKER"].split(",")) == {f"{b}:9092" for b in brokers}, name
        assert environment["STATEGATE_REPLICATION_FACTOR"] == 3, name
