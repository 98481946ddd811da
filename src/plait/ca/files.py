"""The CA directory: file names, private writes (0600 from creation on), PEM loading.

Two layouts, told apart by the presence of `ca-cert.pem`:

- plait-made (`root-cert.pem` + `root-key.pem`): the root signs workload certificates.
  Root rotation adds `next-root-cert.pem` + `next-root-key.pem` (trusted, not signing)
  and, after the switch, `extra-roots.pem` (old roots, still trusted).
- plugged-in (Istio's "plug in CA certificates" layout): `ca-cert.pem` + `ca-key.pem`
  sign, `cert-chain.pem` holds the chain from `ca-cert.pem` up to the root, and
  `root-cert.pem` is the root. See
  https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/

Private keys are created with mode 0600 by `os.open` (never chmod-ed after the bytes are
written) and replaced atomically (`os.replace` of a 0600 temporary file).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from plait.errors import CaFileError

ROOT_CERT = "root-cert.pem"
ROOT_KEY = "root-key.pem"
NEXT_ROOT_CERT = "next-root-cert.pem"
NEXT_ROOT_KEY = "next-root-key.pem"
EXTRA_ROOTS = "extra-roots.pem"
PLUGGED_CERT = "ca-cert.pem"
PLUGGED_KEY = "ca-key.pem"
PLUGGED_CHAIN = "cert-chain.pem"

WATCHED = (
    ROOT_CERT,
    ROOT_KEY,
    NEXT_ROOT_CERT,
    NEXT_ROOT_KEY,
    EXTRA_ROOTS,
    PLUGGED_CERT,
    PLUGGED_KEY,
    PLUGGED_CHAIN,
)
"""Every file whose change makes a running CA reload."""

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) with mode 0700; tighten it if it already exists."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(directory.stat().st_mode) & 0o077:
        directory.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically through a temporary file created 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_public(path: Path, data: bytes) -> None:
    """Write a public file (a certificate) atomically, mode 0644."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CaFileError(f"{path}: missing") from None
    except OSError as exc:
        raise CaFileError(f"{path}: cannot read it ({exc.strerror})") from None


def load_certs(path: Path, *, at_least_one: bool = True) -> list[x509.Certificate]:
    """Every PEM certificate in `path`, in file order."""
    data = _read(path)
    try:
        certs = x509.load_pem_x509_certificates(data) if data.strip() else []
    except ValueError as exc:
        raise CaFileError(
            f"{path}: not a list of PEM certificates ({exc}); replace it with the "
            "PEM certificate(s) it should hold"
        ) from None
    if at_least_one and not certs:
        raise CaFileError(f"{path}: holds no certificate")
    return certs


def load_cert(path: Path) -> x509.Certificate:
    certs = load_certs(path)
    if len(certs) != 1:
        raise CaFileError(f"{path}: holds {len(certs)} certificates, expected exactly one")
    return certs[0]


def load_signing_key(path: Path) -> SigningKey:
    """An unencrypted EC (P-256/P-384) or RSA (>= 2048 bits) private key."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CaFileError(
            f"{path}: the key is encrypted; plait needs it unencrypted (protect it with "
            "mode 0600 in a 0700 directory instead)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CaFileError(f"{path}: not a PEM private key plait can use") from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in (
        "secp256r1",
        "secp384r1",
    ):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise CaFileError(f"{path}: plait signs with EC P-256/P-384 or RSA >= 2048 keys only")


def loose_key_files(ca_dir: Path) -> list[str]:
    """Key files in `ca_dir` that group or others may read (a warning for `status`)."""
    loose = []
    for name in (ROOT_KEY, NEXT_ROOT_KEY, PLUGGED_KEY):
        with contextlib.suppress(OSError):
            if stat.S_IMODE((ca_dir / name).stat().st_mode) & 0o077:
                loose.append(str(ca_dir / name))
    return loose


def stamp(ca_dir: Path) -> tuple[tuple[str, int, int, int], ...]:
    """(name, inode, mtime_ns, size) of every watched file that exists: cheap change
    detection (the inode catches an atomic replace within one mtime tick)."""
    out = []
    for name in WATCHED:
        try:
            st = (ca_dir / name).stat()
        except OSError:
            continue
        out.append((name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)
