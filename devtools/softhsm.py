"""A SoftHSM2 token for CA keys (`key_store: pkcs11`), for `make hsm-token` and the tests.

    python -m devtools.softhsm [--dir .softhsm] [--label iot-cert-service]

Makes (once) a token directory with its own `softhsm2.conf` and a token labelled `--label` with
a random user PIN, kept in `<dir>/pin` (0600) beside the token, and prints the settings that
point the service at it (`make run HSM=1` reads them). A token that exists is kept as it is:
the CA keys in it would be lost.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
"""Where distributions install SoftHSM2's PKCS#11 module."""
DEFAULT_LABEL = "iot-cert-service"


@dataclass(frozen=True)
class Token:
    config: Path  # SOFTHSM2_CONF
    module: str
    label: str
    pin: str

    def environment(self) -> dict[str, str]:
        return {
            "SOFTHSM2_CONF": str(self.config),
            "PKCS11_MODULE": self.module,
            "PKCS11_TOKEN": self.label,
            "PKCS11_PIN": self.pin,
        }


def softhsm_module() -> str | None:
    """SoftHSM2's module where it is installed, with its `softhsm2-util`; None otherwise."""
    if _util() is None:
        return None
    return next((module for module in MODULES if Path(module).is_file()), None)


def _util() -> str | None:
    return shutil.which(
        "softhsm2-util", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/local/bin"
    )


def ensure_token(directory: Path, label: str = DEFAULT_LABEL) -> Token:
    """The token in `directory`, made the first time (RuntimeError without SoftHSM2)."""
    module, util = softhsm_module(), _util()
    if module is None or util is None:
        raise RuntimeError("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    directory = directory.resolve()
    tokens = directory / "tokens"
    config = directory / "softhsm2.conf"
    pin_file = directory / "pin"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    environment = {**os.environ, "SOFTHSM2_CONF": str(config)}
    slots = subprocess.run(
        [util, "--show-slots"], env=environment, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    if pin_file.exists() and f"Label:            {label}" in slots:
        return Token(config, module, label, pin_file.read_text().strip())
    pin = secrets.token_hex(8)
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin,
         "--so-pin", secrets.token_hex(8)],
        env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    descriptor = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(pin + "\n")
    return Token(config, module, label, pin)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".softhsm"))
    parser.add_argument("--label", default=DEFAULT_LABEL)
    parser.add_argument("--env", action="store_true", help="print only the settings, as VAR=value")
    parsed = parser.parse_args(arguments)
    try:
        token = ensure_token(parsed.dir, parsed.label)
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"hsm-token: {err}", file=sys.stderr)
        return 1
    settings = " ".join(f"{name}={value}" for name, value in token.environment().items())
    if parsed.env:
        print(settings)
    else:
        print(f"SoftHSM2 token {token.label!r} in {parsed.dir}/ (its PIN in {parsed.dir}/pin).")
        print("Serve with CA keys in it: make run HSM=1  (or set these for the service:)")
        print(f"  {settings.replace(token.pin, '$(cat ' + str(parsed.dir) + '/pin)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
