"""Status like Istio's, with two `plait discovery` replicas electing a leader on a Lease:
an invalid VirtualService shows its message (field path, no file) in
`kubectl get virtualservice NAME -o yaml`; only the leader writes it (the status
subresource's managedFields name one field manager, the Lease holder's); fixing the
resource clears it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubecluster import Cluster, free_port

T = TypeVar("T")


def wait_for(what: str, get: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def virtual_service(ns: str, regex: str) -> str:
    return json.dumps(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "hosts": ["web"],
                "http": [
                    {
                        "match": [{"uri": {"regex": regex}}],
                        "route": [{"destination": {"host": "web"}}],
                    }
                ],
            },
        }
    )


@pytest.fixture
def replicas(kube: Cluster, tmp_path: Path) -> Iterator[tuple[str, str]]:
    kube.apply_crds()
    lease = f"plait-{uuid.uuid4().hex[:6]}"
    plait = str(Path(sys.executable).with_name("plait"))
    procs = []
    for name in ("one", "two"):
        log = (tmp_path / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    plait,
                    "discovery",
                    "--kubeconfig",
                    str(kube.kubeconfig),
                    "--host",
                    "127.0.0.1",
                    "--xds-port",
                    str(free_port()),
                    "--status-port",
                    str(free_port()),
                    "--lease",
                    lease,
                    "--lease-namespace",
                    "default",
                    "--identity",
                    name,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
        log.close()
    try:
        yield lease, str(tmp_path)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        for name in ("one", "two"):
            print(f"--- {name} ---\n" + (tmp_path / f"{name}.log").read_text()[-2000:])


def test_only_the_leader_writes_an_invalid_resources_message(
    kube: Cluster, replicas: tuple[str, str]
) -> None:
    lease, _ = replicas
    ns = f"st-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)

    def holder() -> str:
        out = kube.kubectl(
            "get", "lease", lease, "-n", "default", "--ignore-not-found", "-o", "json"
        )
        return str(json.loads(out)["spec"].get("holderIdentity") or "") if out else ""

    leader = wait_for("a leader", holder)
    assert leader in ("one", "two")

    kube.kubectl("apply", "-f", "-", input=virtual_service(ns, "/(?=x)"))  # RE2: no lookahead

    def status() -> dict[str, Any]:
        obj = json.loads(
            kube.kubectl(
                "get", "virtualservice", "web", "-n", ns, "-o", "json", "--show-managed-fields"
            )
        )
        return dict(obj)

    def refused() -> dict[str, Any] | None:
        obj = status()
        return obj if (obj.get("status") or {}).get("conditions") else None

    obj = wait_for("the status", refused)
    [condition] = obj["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Accepted",
        "False",
        "Invalid",
    )
    assert condition["message"].startswith("spec.http[0].match[0].uri.regex: ")
    assert "kubernetes:" not in condition["message"]  # no file, the field path
    assert obj["status"]["validationMessages"] == [
        {"level": "ERROR", "type": {"code": "PLT0001", "name": "InvalidResource"}}
    ]
    yaml_out = kube.kubectl("get", "virtualservice", "web", "-n", ns, "-o", "yaml")
    assert "message: 'spec.http[0].match[0].uri.regex: " in yaml_out
    writers = {
        m["manager"] for m in obj["metadata"]["managedFields"] if m.get("subresource") == "status"
    }
    assert writers == {f"plait-{leader}"}

    # fixed: the message goes (again written by the leader only)
    kube.kubectl("apply", "-f", "-", input=virtual_service(ns, "/x.*"))
    cleared = wait_for("the status cleared", lambda: None if refused() else status())
    assert not (cleared.get("status") or {}).get("validationMessages")
    writers = {
        m["manager"]
        for m in cleared["metadata"]["managedFields"]
        if m.get("subresource") == "status"
    }
    assert writers <= {f"plait-{leader}"}


def test_analyze_checks_the_clusters_resources_and_files_in_their_place(
    kube: Cluster, tmp_path: Path
) -> None:
    kube.apply_crds()
    ns = f"an-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("apply", "-f", "-", input=virtual_service(ns, "/(?=x)"))
    plait = str(Path(sys.executable).with_name("plait"))
    ours = f"kubernetes:VirtualService/{ns}/web"

    def analyze(*args: str) -> tuple[int, list[dict[str, Any]]]:
        done = subprocess.run(
            [plait, "analyze", "--kubeconfig", str(kube.kubeconfig), "-o", "json", *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)["messages"]

    code, messages = analyze()
    errors = [m for m in messages if m["file"] == ours and m["severity"] == "error"]
    assert code == 1 and errors, messages
    assert errors[0]["path"].startswith("spec.http[0].match[0].uri")

    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(virtual_service(ns, "/x.*"))  # JSON is YAML
    _, messages = analyze("-f", str(fixed))
    assert not [m for m in messages if m["file"] in (ours, str(fixed)) and m["severity"] == "error"]
