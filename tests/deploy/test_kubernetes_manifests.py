"""deploy/kubernetes: the API as a Deployment, the runners on a KubeRay RayCluster, the store on a
volume. The manifests are rendered as kustomize would (images replaced) and validated against
the Kubernetes schemas (kubernetes-validate, strict: no unknown field); the RayCluster, a custom
resource, has its pod templates validated as PodTemplates and its own fields checked. Then what
ties the pieces together: the same volume at MODELS_PATH, the token secret, the head service.
"""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = kubernetes_validate.latest_version()
TOKEN_SECRET = "modelrunner-ray-token"


def render():
    """Every document of the kustomization's resources, with its image replacements applied."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization["images"]}
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
            for container in _containers(doc):
                container["image"] = images.get(container["image"], container["image"])
            doc["metadata"]["namespace"] = kustomization["namespace"]
            docs.append(doc)
    return kustomization, docs


def _pod_specs(doc):
    if doc["kind"] == "Deployment":
        yield doc["spec"]["template"]
    elif doc["kind"] == "RayCluster":
        yield doc["spec"]["headGroupSpec"]["template"]
        for group in doc["spec"]["workerGroupSpecs"]:
            yield group["template"]


def _containers(doc):
    for template in _pod_specs(doc):
        yield from template["spec"]["containers"]


def _env(container):
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def rendered():
    return render()


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_every_manifest_is_in_the_kustomization(rendered):
    kustomization, _ = rendered
    files = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_built_in_resources_pass_the_kubernetes_schemas_strictly(rendered):
    _, docs = rendered
    kinds = set()
    for doc in docs:
        if doc["apiVersion"] == "ray.io/v1":
            continue
        kubernetes_validate.validate(doc, VERSION, strict=True)
        kinds.add(doc["kind"])
    assert kinds == {"Deployment", "Service", "PersistentVolumeClaim", "NetworkPolicy"}


def test_the_ray_cluster_pod_templates_pass_the_schemas_and_its_groups_are_complete(rendered):
    _, docs = rendered
    cluster, = by_kind(docs, "RayCluster")
    for template in _pod_specs(cluster):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                      "metadata": {"name": "t"}, "template": template},
                                     VERSION, strict=True)
    spec = cluster["spec"]
    assert spec["rayVersion"].startswith("2.")
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no runners on the head
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["rayStartParams"]["labels"].startswith("modelrunner/node=")
        for container in group["template"]["spec"]["containers"]:
            assert container["resources"]["limits"]["memory"]  # the node's Ray memory budget


def test_every_pod_mounts_the_one_store_where_the_api_keeps_it(rendered):
    _, docs = rendered
    claim, = by_kind(docs, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    api, = by_kind(docs, "Deployment")
    models_path = _env(api["spec"]["template"]["spec"]["containers"][0])["MODELS_PATH"]["value"]
    for doc in docs:
        for template in _pod_specs(doc):
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            for container in template["spec"]["containers"]:
                mount, = [m for m in container["volumeMounts"] if m["mountPath"] == models_path]
                claim_name = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
                assert claim_name == claim["metadata"]["name"]


def test_the_api_reaches_the_ray_head_with_the_token_every_ray_pod_has(rendered):
    _, docs = rendered
    api, = by_kind(docs, "Deployment")
    cluster, = by_kind(docs, "RayCluster")
    assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"]["type"] == "Recreate"
    env = _env(api["spec"]["template"]["spec"]["containers"][0])
    assert env["RAY_HEAD"]["value"] == f"{cluster['metadata']['name']}-head-svc"
    assert env["MODELRUNNER_RAY_ADDRESS"]["value"]
    for doc in (api, cluster):
        for container in _containers(doc):
            ref = _env(container)["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == TOKEN_SECRET
            assert _env(container)["RAY_AUTH_MODE"]["value"] == "token"
    assert f"create secret generic {TOKEN_SECRET}" in (DEPLOY / "kustomization.yaml").read_text()


def test_the_service_selects_the_api_pods_on_their_http_port(rendered):
    _, docs = rendered
    api, = by_kind(docs, "Deployment")
    service, = by_kind(docs, "Service")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"] for c in _containers(api) for p in c["ports"]}
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_the_api_probes_pass_the_host_guard_and_clients_need_its_key(rendered):
    import falcon
    from falcon import testing

    from modelrunner import ModelRunnerError
    from modelrunner.trust import Trust

    _, docs = rendered
    api, = by_kind(docs, "Deployment")
    container, = _containers(api)
    env = _env(container)
    allowed = yaml.safe_load(env["MODELRUNNER_ALLOWED_HOSTS"]["value"])
    assert env["MODEL_RUNNER_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "modelrunner-api-key"
    assert "create secret generic modelrunner-api-key" in \
        (DEPLOY / "kustomization.yaml").read_text()
    # what the kubelet sends: the probe's Host header, through the server's real Host guard
    app = falcon.App(middleware=[Trust({"allowed_hosts": allowed, "host": "0.0.0.0",
                                        "port": 12434})])
    app.add_route("/", type("Root", (), {"on_get": lambda self, req, resp: None})())

    def refused(req, resp, error, params):  # the app's own error path, reduced to the status
        resp.status = falcon.code_to_http_status(error.status)
    app.add_error_handler(ModelRunnerError, refused)
    client = testing.TestClient(app)
    for probe in ("readinessProbe", "livenessProbe"):
        headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
        assert client.simulate_get("/", headers=headers).status_code == 200, probe
    assert client.simulate_get("/", headers={"Host": "10.244.1.7:12434"}).status_code == 403
    for host in allowed:
        assert client.simulate_get("/", headers={"Host": f"{host}:12434"}).status_code == 200


def test_pods_run_unprivileged_and_runner_nodes_read_the_store_only(rendered):
    _, docs = rendered
    for doc in docs:
        for template in _pod_specs(doc):
            assert template["spec"]["securityContext"]["runAsNonRoot"] is True
            for container in template["spec"]["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert container["resources"]["limits"]["cpu"]
    cluster, = by_kind(docs, "RayCluster")
    for container in _containers(cluster):
        assert all(m.get("readOnly") for m in container["volumeMounts"])
    api, = by_kind(docs, "Deployment")
    assert _env(api["spec"]["template"]["spec"]["containers"][0])[
        "MODELRUNNER_RAY_LOG_DIR"]["value"].startswith("/tmp/")


def test_only_modelrunners_pods_reach_the_ray_cluster(rendered):
    _, docs = rendered
    cluster, = by_kind(docs, "RayCluster")
    policy, = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "ray.io/cluster": cluster["metadata"]["name"]}
    api, = by_kind(docs, "Deployment")
    sources = [f["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]
               for f in rule["from"]]
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    assert any(s.items() <= api_labels.items() for s in sources)

