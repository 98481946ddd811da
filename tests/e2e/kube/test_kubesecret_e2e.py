"""The mesh CA kept in a Secret (plait.ca.kubesecret) against the real API server: two
replicas starting together end up with the same root (the loser of the create race takes
the winner's files); a later start restores it; a plugged-in `cacerts` Secret wins."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

from lightkube import AsyncClient, KubeConfig

from kubecluster import Cluster
from plait.ca import CertificateAuthority, files, kubesecret
from plait.ca.store import Layout
from testpki import pem, plugged_in


def _client(kube: Cluster) -> AsyncClient:
    return AsyncClient(KubeConfig.from_file(str(kube.kubeconfig)), field_manager="plait-test")


def test_replicas_racing_share_one_root_and_a_restart_restores_it(
    kube: Cluster, tmp_path: Path
) -> None:
    ns = f"ca-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)

    async def race() -> list[str]:
        client = _client(kube)
        try:
            return list(
                await asyncio.gather(
                    *(kubesecret.restore(client, ns, "plait-ca", tmp_path / f"r{i}", "cluster.local")
                      for i in range(3))
                )
            )  # fmt: skip
        finally:
            await client.close()

    try:
        assert asyncio.run(race()) == ["plait-ca"] * 3
        roots = {(tmp_path / f"r{i}" / files.ROOT_CERT).read_bytes() for i in range(3)}
        assert len(roots) == 1  # one root for every replica
        secret = json.loads(kube.kubectl("get", "secret", "plait-ca", "-n", ns, "-o", "json"))
        assert base64.b64decode(secret["data"][files.ROOT_CERT]) in roots
        assert sorted(secret["data"]) == [files.ROOT_CERT, files.ROOT_KEY]
        # each directory is a CA that loads, and the key is private
        for i in range(3):
            CertificateAuthority.load(tmp_path / f"r{i}", "cluster.local")
            assert (tmp_path / f"r{i}" / files.ROOT_KEY).stat().st_mode & 0o077 == 0

        async def restart() -> str:
            client = _client(kube)
            try:
                return await kubesecret.restore(
                    client, ns, "plait-ca", tmp_path / "later", "cluster.local"
                )
            finally:
                await client.close()

        assert asyncio.run(restart()) == "plait-ca"
        assert (tmp_path / "later" / files.ROOT_CERT).read_bytes() in roots
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false")


def test_a_plugged_in_cacerts_secret_wins(kube: Cluster, tmp_path: Path) -> None:
    ns = f"ca-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    plugged = tmp_path / "plugged"
    root, _ = plugged_in(plugged)  # Istio's layout: an intermediate signs, below the root
    args = [f"--from-file={n}={plugged / n}" for n in
            (files.PLUGGED_CERT, files.PLUGGED_KEY, files.PLUGGED_CHAIN, files.ROOT_CERT)]  # fmt: skip
    kube.kubectl("create", "secret", "generic", "cacerts", "-n", ns, *args)

    async def restore() -> str:
        client = _client(kube)
        try:
            return await kubesecret.restore(
                client, ns, "plait-ca", tmp_path / "ca", "cluster.local"
            )
        finally:
            await client.close()

    try:
        assert asyncio.run(restore()) == "cacerts"
        ca = CertificateAuthority.load(tmp_path / "ca", "cluster.local")
        assert ca.layout is Layout.PLUGGED
        assert (tmp_path / "ca" / files.ROOT_CERT).read_bytes() == pem(root)
        assert kube.kubectl("get", "secret", "plait-ca", "-n", ns, "--ignore-not-found") == ""
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false")
