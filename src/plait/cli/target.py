"""Local mesh or cluster: how `proxy-status`, `proxy-config` and `describe` tell them apart.

kubectl's conventions pick the cluster: `--kubeconfig FILE` or `--context NAME` select
cluster mode; so does leaving out the mesh DIRECTORY (then `$KUBECONFIG`,
`~/.kube/config` or the in-cluster account is used, as kubectl does). A DIRECTORY without
those options is local mode, unchanged — even when `$KUBECONFIG` is set, so a shell that
talks to a cluster still inspects `plait up` meshes as before. Both a DIRECTORY and
--kubeconfig/--context is refused (exit 2). In a cluster the control plane is reached
through the API server at Service `plaitd` port 15014 of `--namespace/-i` (default
istio-system, as istioctl's `--istioNamespace`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from plait.cli import exitcodes
from plait.kube.controlplane import DEFAULT_NAMESPACE, ControlPlane

KubeconfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the "
        "in-cluster service account inside a pod).",
    ),
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use.")]
ControlPlaneNamespaceOpt = Annotated[
    str,
    typer.Option(
        "--namespace",
        "--istio-namespace",
        "-i",
        help="With a cluster: the control plane's namespace (its Service plaitd).",
    ),
]


def is_cluster(directory: Path | None, kubeconfig: Path | None, context: str | None) -> bool:
    """Cluster mode (see the module docstring); a DIRECTORY together with --kubeconfig or
    --context is a usage error (exit 2), not a guess."""
    cluster_options = kubeconfig is not None or context is not None
    if directory is not None and cluster_options:
        raise typer.BadParameter(
            "a mesh DIRECTORY is local mode and --kubeconfig/--context select a cluster: "
            "give one or the other",
            param_hint="DIRECTORY",
        )
    return cluster_options or directory is None


def control_plane(
    err: Console,
    kubeconfig: Path | None,
    context: str | None,
    namespace: str = DEFAULT_NAMESPACE,
) -> ControlPlane:
    """The control plane of the selected cluster; a kubeconfig that selects none is one
    error line and exit 2."""
    from plait.errors import KubeError
    from plait.kube import config as kube_config

    try:
        return ControlPlane(kube_config.load(kubeconfig, context), namespace)
    except KubeError as exc:
        error_line(err, str(exc))
        raise typer.Exit(cluster_exit_code(exc)) from None


def cluster_exit_code(exc: Exception) -> int:
    """USAGE for a kubeconfig that selects no cluster, FORBIDDEN when the API server
    refuses, NOT_RUNNING otherwise (no control plane found, or nothing answers)."""
    from plait.errors import KubeConfigError, KubeForbiddenError

    if isinstance(exc, KubeConfigError):
        return exitcodes.USAGE
    if isinstance(exc, KubeForbiddenError):
        return exitcodes.FORBIDDEN
    return exitcodes.NOT_RUNNING


def error_line(err: Console, message: str) -> None:
    """An error as one line, never wrapped at the terminal's width (scripts grep it)."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
