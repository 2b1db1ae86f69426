"""Fixtures of the study tests: a head-only config on the tiny `keras:` backbone (tests/conftest.py)
that trains in seconds; a throwaway PostgreSQL server for the shared-study test."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tiny_config


def head_config(backbone: Path, **sections) -> dict:
    """A head-only config on builtin:shapes with the tiny backbone: one short phase, val only."""
    config = tiny_config(
        name="tune",
        data={"builtin_per_class": 8, "batch_size": 16},
        model={"backbone": f"keras:{backbone}", "weights": "imagenet"},
        schedule={"preset": "feature_extraction", "epochs": 1},
        training={"steps_per_epoch": None},
        evaluate={"splits": ["val"]},
    )
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


# A password the PostgreSQL test looks for in everything `tfft tune` prints or writes (it must not be there).
POSTGRES_PASSWORD = "tfft-s3cret-pw"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for this session: `postgresql://tfft:PASSWORD@127.0.0.1:PORT/postgres`.

    Its cluster lives in a temporary folder (owned by the `postgres` user when the tests run as
    root: PostgreSQL refuses root), on a free localhost port, password-authenticated; it is
    stopped by its pid and deleted at the end. Skipped, naming the package, where PostgreSQL is
    not installed (`make test` installs Debian's `postgresql`: tests/setup/system_packages.sh).
    """
    import psycopg  # the dev extra installs it

    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql: run tests/setup/system_packages.sh as root)")
    bindir = Path(initdb[-1]).parent
    as_root = os.geteuid() == 0
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
    owner = {"user": "postgres", "group": "postgres", "extra_groups": []} if as_root else {}
    root = Path(tempfile.mkdtemp(prefix="tfft-postgres-"))
    (root / "socket").mkdir()
    (root / "password").write_text(POSTGRES_PASSWORD + "\n")
    if as_root:
        for path in (root, root / "socket", root / "password"):
            shutil.chown(path, "postgres", "postgres")
    server = None
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(root / "data"), "-U", "tfft", "--pwfile", str(root / "password"),
                        "--auth", "scram-sha-256", "--no-locale", "-E", "UTF8"],
                       cwd=root, check=True, capture_output=True, timeout=120, **owner)
        port = _free_port()
        log = open(root / "server.log", "wb")
        server = subprocess.Popen([str(bindir / "postgres"), "-D", str(root / "data"), "-p", str(port),
                                   "-k", str(root / "socket"), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                                  cwd=root, stdout=log, stderr=subprocess.STDOUT, **owner)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=port, user="tfft", password=POSTGRES_PASSWORD,
                                dbname="postgres", connect_timeout=5).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {(root / 'server.log').read_text()}") from None
                time.sleep(0.2)
        yield f"postgresql://tfft:{POSTGRES_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        if server is not None and server.poll() is None:
            os.kill(server.pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
        shutil.rmtree(root, ignore_errors=True)
