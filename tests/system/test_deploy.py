"""The shipped deployment files: every kustomize overlay renders (``kubectl kustomize``) and
validates offline against the Kubernetes 1.32 schemas in strict mode, and what they wire (probe
paths, drain time, metric names) matches what the server does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.database import Postgres
from app.jobs.store import JobStore
from tests.support.harness import REPO
from tests.support.postgres import postgres_cluster

DEPLOY = REPO / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "kubernetes" / "overlays").iterdir())
UVICORN_SHUTDOWN_S = 10  # serve()'s timeout_graceful_shutdown, after the drain


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is preinstalled on these machines; it is missing"
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


def test_there_are_cpu_and_gpu_overlays() -> None:
    assert OVERLAYS == ["cpu", "gpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        # Raises on the first schema error (unknown fields included) of each resource.
        kubernetes_validate.validate(doc, "1.32.0", strict=True)
    kinds = by_kind(docs)
    assert set(kinds) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_wires_the_servers_endpoints_and_drain(overlay: str, client: TestClient) -> None:
    kinds = by_kind(render(overlay))
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert client.get(path).status_code == 200, path  # a route the server answers
    # The kubelet's SIGKILL comes only after the preStop pause, the whole drain and the shutdown.
    settings = Settings(**yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]))
    pre_stop_s = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= pre_stop_s + settings.drain_timeout_s + UVICORN_SHUTDOWN_S
    assert settings.drain_timeout_s >= 30
    # Non-root, read-only root filesystem, with somewhere writable for caches.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/cache/asr", "/tmp"} <= mounts
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # The HPA scales on a metric the server exports.
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]
    assert hpa["metric"]["name"] == "asr_requests_in_progress"
    assert f"\n{hpa['metric']['name']} " in client.get("/metrics").text
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ASR_DEVICE"] == overlay.replace("gpu", "cuda")
    if overlay == "gpu":
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert container["image"].endswith(":cuda")


def test_pdb_and_service_select_the_deployments_pods() -> None:
    kinds = by_kind(render("cpu"))
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (
        ("Service", kinds["Service"]["spec"]["selector"]),
        ("PodDisruptionBudget", kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]),
    ):
        assert selector.items() <= pod_labels.items(), kind


def test_compose_runs_replicas_behind_nginx_with_a_gpu_profile() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["asr"]["deploy"]["replicas"] >= 2
    nginx_mounts = services["nginx"]["volumes"]
    assert "./nginx/proxy.conf:/etc/nginx/asr/proxy.conf:ro" in nginx_mounts
    assert "include /etc/nginx/asr/proxy.conf;" in (DEPLOY / "nginx" / "nginx.conf").read_text()
    gpu = services["asr-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert (REPO / gpu["build"]["dockerfile"]).is_file()


def test_shipped_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (`make test` installs it)"
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_keda_scales_the_deployment_on_the_job_queue(client: TestClient) -> None:
    """The optional KEDA objects: the ScaledObject names the base's Deployment, its PostgreSQL
    trigger's query runs on the jobs table as the server makes it, its Prometheus trigger reads a
    metric the server exports."""
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "keda" / "scaledobject.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in docs}
    assert set(kinds) == {"TriggerAuthentication", "ScaledObject"}
    scaled = kinds["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == by_kind(render("cpu"))["Deployment"]["metadata"]["name"]
    triggers = {t["type"]: t for t in scaled["triggers"]}
    assert (
        triggers["postgresql"]["authenticationRef"]["name"]
        == kinds["TriggerAuthentication"]["metadata"]["name"]
    )
    query = triggers["postgresql"]["metadata"]["query"]
    with postgres_cluster() as url:
        db = Postgres(url)
        store = JobStore(db)  # the tables as the server makes them
        assert db.read(query, ()) == [{"count": 0}]
        store.close()
    metric = triggers["prometheus"]["metadata"]["query"].split("(")[1].split("{")[0]
    assert f"\n{metric} " in client.get("/metrics").text
