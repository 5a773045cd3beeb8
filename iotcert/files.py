"""Files on disk: downloads, and the PEM layout a broker or a device loads.

`cert.pem`, `chain.pem`, `fullchain.pem`, `key.pem` and `ca.pem` in one directory is what
mosquitto, most MQTT clients and TLS servers want; `ca.pem` is the root CA certificate at the end of
the chain, the trust anchor of both sides of a mutual-TLS connection.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

from iotcert.client import CliError

_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", flags=re.DOTALL
)
PUBLIC_MODE = 0o644
SECRET_MODE = 0o600
FILE_PURPOSES = {
    "ca.pem": "the root CA certificate: the trust anchor (cafile)",
    "cert.pem": "the certificate",
    "chain.pem": "the CAs that issued it, issuer first, root last",
    "fullchain.pem": "cert.pem then chain.pem: what the broker or device presents (certfile)",
    "key.pem": "its private key, mode 0600 (keyfile)",
}


def read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err


def write_file(path: Path, content: bytes, mode: int) -> None:
    """`content` to `path`, replaced at once: a reader never sees half a file, and a key is never
    readable by others, not even for a moment (the temporary file is created 0600)."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror}") from err
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(content)
        os.replace(temporary, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise CliError(f"cannot write {path}: {err.strerror}") from err


def emit(content: bytes, path: str | None, *, binary: bool, secret: bool = False) -> None:
    """A downloaded file to `path`, or to standard output (never binary to a terminal)."""
    if path is None or path == "-":
        if binary and sys.stdout.isatty():
            raise CliError("this is a binary file: give -o FILE, or redirect the output")
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    write_file(Path(path), content, SECRET_MODE if secret else PUBLIC_MODE)
    print(f"wrote {path}")


def _pem(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"


def write_certificate_files(
    directory: Path, certificate: str, chain: str, private_key: str | None
) -> list[str]:
    """The layout in `directory` (created 0700 when missing); the names of the files written.
    A root has no chain.pem (its chain is empty) and is its own ca.pem."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {directory}: {err.strerror}") from err
    certificate, chain = _pem(certificate), _pem(chain)
    anchors = _PEM_CERTIFICATE.findall(chain) or [certificate]
    files = {"ca.pem": _pem(anchors[-1]), "cert.pem": certificate}
    if chain:
        files["chain.pem"] = chain
    files["fullchain.pem"] = certificate + chain
    for name, text in files.items():
        write_file(directory / name, text.encode(), PUBLIC_MODE)
    if private_key:
        write_file(directory / "key.pem", _pem(private_key).encode(), SECRET_MODE)
        files["key.pem"] = private_key
    return sorted(files)


def usage_lines(directory: Path, names: list[str], cert_type: str) -> list[str]:
    """What each file is, and where it goes: a broker's mosquitto.conf, a device's client."""
    width = max(len(name) for name in names)
    lines = [f"wrote {directory}/"]
    lines += [f"  {name:<{width}}  {FILE_PURPOSES[name]}" for name in names]
    if "key.pem" not in names:
        return lines
    if cert_type == "Server":  # absolute: mosquitto may start from another directory
        ca, cert, key = (
            directory.absolute() / name for name in ("ca.pem", "fullchain.pem", "key.pem")
        )
        lines += [
            "mosquitto.conf:",
            f"  cafile {ca}",
            f"  certfile {cert}",
            f"  keyfile {key}",
            "  require_certificate true",
        ]
    elif cert_type == "Client":
        ca, cert, key = (directory / name for name in ("ca.pem", "fullchain.pem", "key.pem"))
        lines.append(f"mosquitto_pub/mosquitto_sub: --cafile {ca} --cert {cert} --key {key}")
    return lines
