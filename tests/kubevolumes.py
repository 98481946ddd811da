"""Pod volumes for the test node agent (tests/kubenode.py): files made on the host, then
bind-mounted at each container's `mountPath` inside the pod's private mount namespace.

Supported: `emptyDir`, `configMap`, `secret`, `downwardAPI` (metadata.name/namespace/uid,
labels, annotations) and `projected` with those plus `serviceAccountToken`, which is a real
TokenRequest bound to the Pod (so the API server's TokenReview says which pod holds it).
Kubernetes' ServiceAccount admission adds such a projected volume to every pod
(`kube-api-access-*`: token, `ca.crt` from `kube-root-ca.crt`, namespace) at
/var/run/secrets/kubernetes.io/serviceaccount. Tokens are not refreshed (they live an hour
by default, longer than a test).

`ip netns exec` already gives each process a private mount namespace; `mount_script`
mounts a tmpfs on /run there (so paths under /run and /var/run can be made without
touching the host) and bind-mounts each volume. Another mountPath must already exist
on the host.

A container with another user (the injected proxy runs as 1337) must still run the test
venv's python and Envoy, whose interpreter may live under /root (mode 0700). The same
private mount namespace solves it: `hidden_from_others` finds such directories on the way
to the interpreter, the venv and sys.path, and `mount_script` covers each with a tmpfs
(0755) holding bind mounts of just those paths. The container keeps its uid (capture
exempts the proxy by uid 1337, so running it as root with gid 1337 would be a different
pod from the one the injector wrote), the host's modes are not changed, and nothing else
under /root becomes visible to it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Secret, ServiceAccount

PRIVATE_ROOTS = ("/run/", "/var/run/")


class VolumeError(Exception):
    """A volume the agent cannot provide (the pod is reported failed with this message)."""


def prepare(client: Client, pod: Any, root: Path) -> dict[str, Path]:
    """Each of the pod's volumes as a directory under `root`, by volume name."""
    for volume in pod.spec.volumes or []:
        where = root / volume.name
        where.mkdir(parents=True, exist_ok=True)
        if volume.emptyDir is not None:
            where.chmod(0o777)  # as kubelet makes it: writable by any container user
        elif volume.configMap is not None:
            _write(where, _config_map(client, volume.configMap.name, pod), volume.configMap.items)
        elif volume.secret is not None:
            _write(where, _secret(client, volume.secret.secretName, pod), volume.secret.items)
        elif volume.downwardAPI is not None:
            _write(where, _downward(volume.downwardAPI.items, pod), None)
        elif volume.projected is not None:
            for source in volume.projected.sources or []:
                _project(client, source, pod, where)
        else:
            raise VolumeError(f"volume {volume.name}: only emptyDir, configMap, secret, "
                              "downwardAPI and projected volumes are supported")  # fmt: skip
    return {v.name: root / v.name for v in pod.spec.volumes or []}


def _project(client: Client, source: Any, pod: Any, where: Path) -> None:
    if source.serviceAccountToken is not None:
        spec = source.serviceAccountToken
        token = token_for(client, pod, spec.audience, spec.expirationSeconds)
        (where / spec.path).write_text(token)
    elif source.configMap is not None:
        _write(where, _config_map(client, source.configMap.name, pod), source.configMap.items)
    elif source.secret is not None:
        _write(where, _secret(client, source.secret.name, pod), source.secret.items)
    elif source.downwardAPI is not None:
        _write(where, _downward(source.downwardAPI.items, pod), None)


def token_for(client: Client, pod: Any, audience: str | None, seconds: int | None) -> str:
    """A TokenRequest for the pod's ServiceAccount, bound to the pod."""
    meta = pod.metadata
    sa = pod.spec.serviceAccountName or "default"
    request = ServiceAccount.Token(
        metadata=ObjectMeta(name=sa, namespace=meta.namespace),
        spec=TokenRequestSpec(
            audiences=[audience] if audience else [],
            expirationSeconds=seconds or 3607,
            boundObjectRef=BoundObjectReference(
                kind="Pod", apiVersion="v1", name=meta.name, uid=meta.uid
            ),
        ),
    )
    made = client.create(request, name=sa, namespace=meta.namespace)
    assert made.status is not None
    return str(made.status.token)


def _config_map(client: Client, name: str, pod: Any) -> dict[str, bytes]:
    cm = client.get(ConfigMap, name, namespace=pod.metadata.namespace)
    return {k: v.encode() for k, v in (cm.data or {}).items()}


def _secret(client: Client, name: str, pod: Any) -> dict[str, bytes]:
    secret = client.get(Secret, name, namespace=pod.metadata.namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _downward(items: Any, pod: Any) -> dict[str, bytes]:
    meta = pod.metadata
    fields = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "metadata.labels": "\n".join(f'{k}="{v}"' for k, v in sorted((meta.labels or {}).items())),
        "metadata.annotations": "\n".join(
            f'{k}="{v}"' for k, v in sorted((meta.annotations or {}).items())
        ),
    }
    out = {}
    for item in items or []:
        if item.fieldRef is None or item.fieldRef.fieldPath not in fields:
            raise VolumeError(f"downwardAPI item {item.path}: unsupported field")
        out[item.path] = str(fields[item.fieldRef.fieldPath]).encode()
    return out


def _write(where: Path, data: dict[str, bytes], items: Any) -> None:
    chosen = {i.key: i.path for i in items} if items else {k: k for k in data}
    for key, path in chosen.items():
        if key not in data:
            raise VolumeError(f"key {key} not found")
        target = where / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])


def hidden_from_others(paths: list[Path]) -> dict[Path, list[Path]]:
    """For each directory that other users cannot search (no o+x, as /root's 0700) on the
    way to one of `paths`: the paths below it, outermost first, nested ones dropped."""
    out: dict[Path, list[Path]] = {}
    kept: list[Path] = []
    for path in sorted({p.resolve() for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if any(path.is_relative_to(k) for k in kept):
            continue
        for ancestor in [*reversed(path.parents), path][1:]:
            if not ancestor.stat().st_mode & 0o001:
                if ancestor != path:
                    out.setdefault(ancestor, []).append(path)
                    kept.append(path)
                break
    return out


def mount_script(
    mounts: list[tuple[Path, str, bool]], expose: dict[Path, list[Path]] | None = None
) -> str:
    """A shell prologue that mounts (host dir, mountPath, read-only) in the pod's mount
    namespace, then covers each directory of `expose` (see `hidden_from_others`) with
    a tmpfs that holds only the paths listed for it, and execs "$@"."""
    expose = expose or {}
    lines = ["set -e"]
    if expose or any(path.startswith(PRIVATE_ROOTS) for _, path, _ in mounts):
        lines.append("mount -t tmpfs -o mode=755 tmpfs /run")
    # a mount over a directory holding other volumes' sources (an emptyDir on /tmp) last
    mounts = sorted(mounts, key=lambda m: any(src.is_relative_to(m[1]) for src, _, _ in mounts))
    for source, path, read_only in mounts:
        target = "/run/" + path.removeprefix("/var/run/") if path.startswith("/var/run/") else path
        if not target.startswith("/run/") and not Path(target).exists():
            raise VolumeError(f"mountPath {path} does not exist on the test node")
        lines.append(f"mkdir -p '{target}' && mount --bind '{source}' '{target}'")
        if read_only:
            lines.append(f"mount -o remount,bind,ro '{target}'")
    staged = 0
    for hidden, inside in expose.items():
        first = staged
        for kept in inside:  # kept aside on /run, then put back on the tmpfs
            lines.append(
                f"mkdir -p /run/.host/{staged} && mount --bind '{kept}' /run/.host/{staged}"
            )
            staged += 1
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs '{hidden}'")
        for n, kept in enumerate(inside, first):
            lines.append(f"mkdir -p '{kept}' && mount --bind /run/.host/{n} '{kept}'")
    lines.append('exec "$@"')
    return "; ".join(lines)
