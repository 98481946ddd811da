"""The mesh CA kept in a Secret, as istiod keeps `istio-ca-secret`, so that every replica
and every restart of the control plane signs with the same root.

In a pod the CA directory is an emptyDir, gone with the pod; the Secret is what lasts.
`restore` fills the directory before the CA loads it:

1. the Secret `cacerts`, if the user plugged in a CA (Istio's name, Istio's file names:
   `ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`, `root-cert.pem`);
2. else the Secret the control plane made on an earlier start (`plait-ca` in the chart);
3. else a new self-signed root is made in the directory and stored as that Secret with
   `create`. Two replicas starting together race: the API server keeps the first create,
   the other gets 409 Conflict and takes the winner's files in place of its own root.

The Secret's keys are the CA directory's file names (`plait.ca.files`). A Secret the
control plane makes may name an `owner` (`plait.kube.owner`), so that it is garbage
collected with the release that installed the control plane.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import Secret

from plait.ca import files, store
from plait.errors import CaFileError

log = logging.getLogger(__name__)

PLUGGED_SECRET = "cacerts"
PRIVATE = (files.ROOT_KEY, files.NEXT_ROOT_KEY, files.PLUGGED_KEY)


async def _get(client: AsyncClient, name: str, namespace: str) -> Secret | None:
    try:
        return await client.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _write(ca_dir: Path, secret: Secret) -> list[str]:
    """The Secret's CA files into `ca_dir` (keys 0600); the names written."""
    files.ensure_private_dir(ca_dir)
    written = []
    for key, value in sorted((secret.data or {}).items()):
        if key not in files.WATCHED:
            continue  # not a CA file: ignored, as the CA directory ignores other files
        write = files.write_private if key in PRIVATE else files.write_public
        write(ca_dir / key, base64.b64decode(value))
        written.append(key)
    return written


def _replace(ca_dir: Path, secret: Secret) -> None:
    """`ca_dir` holding the Secret's CA files and nothing else (the root made here lost)."""
    for stale in ca_dir.iterdir():
        stale.unlink()
    _write(ca_dir, secret)


def _data(ca_dir: Path) -> dict[str, str]:
    return {
        name: base64.b64encode((ca_dir / name).read_bytes()).decode()
        for name in files.WATCHED
        if (ca_dir / name).exists()
    }


async def restore(
    client: AsyncClient,
    namespace: str,
    name: str,
    ca_dir: Path,
    trust_domain: str,
    owner: OwnerReference | None = None,
) -> str:
    """Make `ca_dir` hold the mesh CA of the cluster (see the module docstring); which
    Secret it came from. CaFileError if a Secret holds no CA files."""
    for secret_name in (PLUGGED_SECRET, name):
        secret = await _get(client, secret_name, namespace)
        if secret is None:
            continue
        if not _write(ca_dir, secret):
            raise CaFileError(f"Secret {namespace}/{secret_name} holds no CA files")
        log.info("mesh CA from Secret %s/%s", namespace, secret_name)
        return secret_name
    if not store.exists(ca_dir):
        store.create_root(ca_dir, trust_domain, dt.datetime.now(dt.UTC))
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    secret = Secret(metadata=ObjectMeta(**meta), type="Opaque", data=_data(ca_dir))
    try:
        await client.create(secret)
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        won = await _get(client, name, namespace)  # another replica made it first
        if won is None:
            raise
        _replace(ca_dir, won)
        log.info("mesh CA from Secret %s/%s (made by another replica)", namespace, name)
        return name
    log.info("made a new root CA and stored it in Secret %s/%s", namespace, name)
    return name
