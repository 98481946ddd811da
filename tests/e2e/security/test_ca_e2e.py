"""A CA the user brings (Istio's plugged-in layout) whose intermediate expires in ten days:
the mesh runs on it, and `plait status` and `plait ca status` warn about the expiry."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import urllib.request
from pathlib import Path

from labkit import Lab, statuses
from meshkit import plait
from seckit import spiffe, xfcc_uris

from testpki import plugged_in


def up_args(where: Path) -> tuple[str, ...]:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    plugged_in(where / "cacerts", not_after=soon)
    (where / "cacerts" / "ca-key.pem").chmod(0o600)
    return ("--ca-dir", str(where / "cacerts"))


def cacerts(lab: Lab) -> Path:
    return lab.mesh.root.parent / "cacerts"


async def test_the_mesh_runs_on_a_plugged_in_ca(lab: Lab) -> None:
    replies = await lab.send("http://echo:8080/plugged", 4)
    assert statuses(replies) == {200: 4}
    assert all(xfcc_uris(r) == [spiffe("default", "client")] for r in replies)
    # the trust bundle the CA hands out is the user's root, and nothing plait made
    root = (cacerts(lab) / "root-cert.pem").read_text()
    state = json.loads((lab.mesh.root / ".plait" / "state.json").read_text())
    ctx = ssl.create_default_context(cadata=root)
    with urllib.request.urlopen(f"{state['ca']}/v1/trust-bundle", context=ctx) as r:
        assert json.loads(r.read())["trustBundle"] == [root]
    assert not (lab.mesh.root / ".plait" / "ca").exists()


def test_status_warns_well_ahead_of_the_intermediates_expiry(lab: Lab) -> None:
    data = lab.mesh.status()
    warnings = data["ca"]["warnings"]
    assert any("ca-cert.pem" in w and "expires" in w for w in warnings), warnings
    text = plait("status", str(lab.mesh.root))
    assert text.returncode == 0, text.stderr
    assert "warning: CA:" in text.stdout and "ca-cert.pem" in text.stdout, text.stdout
    ca = plait("ca", "status", str(lab.mesh.root), "--ca-dir", str(cacerts(lab)), "-o", "json")
    assert ca.returncode == 0, ca.stderr
    described = json.loads(ca.stdout)
    days = [c["daysLeft"] for c in described["certificates"] if c["file"].endswith("ca-cert.pem")]
    assert days and days[0] <= 10
