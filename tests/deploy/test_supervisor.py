"""``make run``'s apps under :mod:`kit.supervisor`: one app killed by the kernel comes back
with backoff while the others keep serving, and stopping honcho stops every app.

The apps start exactly as ``make run`` starts them: honcho with ``deploy/Procfile``, on
their own ports and SQLite databases, on the test broker under a prefix of their own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from kit.migrations import upgrade
from kit.settings import REPO_ROOT
from kit.supervisor import Backoff
from tests.conftest import Broker
from tests.e2e.suite import APPS, _suite_env, free_port

RECOVERY_TIMEOUT_S: Final = 60.0
READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 30.0


def _app_pids(port: int) -> list[int]:
    """The uvicorn processes serving ``port`` (not their supervisors)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and str(port).encode() in argv and b"kit.supervisor" not in argv:
            found.append(int(entry.name))
    return found


def test_backoff_doubles_after_quick_exits_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(initial_s=1, maximum_s=8, stable_s=60)
    delays = []
    delay = None
    for _ in range(5):
        delay = backoff.next_delay(delay, ran_s=0.5)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 8]
    assert backoff.next_delay(8, ran_s=61) == 1


def test_an_app_that_keeps_exiting_is_started_again_until_the_supervisor_is_stopped() -> None:
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kit.supervisor",
            "--name",
            "flaky",
            "--initial-backoff",
            "0.1",
            "--max-backoff",
            "0.4",
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(3)",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert supervisor.stderr is not None
    lines = [supervisor.stderr.readline() for _ in range(8)]
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=STOP_TIMEOUT_S) == 0
    restarts = [line for line in lines if "starting it again" in line]
    delays = [line.split(" in ")[1].split(" s")[0] for line in restarts]
    assert delays == ["0.1", "0.2", "0.4", "0.4"]
    assert all("exit status 3" in line for line in restarts)


@contextmanager
def _make_run(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as output:
        honcho = subprocess.Popen(
            [str(Path(sys.executable).parent / "honcho"), "start", "-f", "deploy/Procfile"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield honcho
    finally:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait()


async def _wait_ready(client: httpx.AsyncClient, url: str, honcho: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while True:
        assert honcho.poll() is None, "honcho stopped"
        try:
            if (await client.get(f"{url}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert asyncio.get_running_loop().time() < deadline, f"{url} never became ready"
        await asyncio.sleep(0.25)


async def test_a_killed_app_comes_back_while_the_others_keep_serving(
    kafka: Broker, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in APPS}
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in APPS}
    for name, package in APPS.items():
        await upgrade(package, urls[name])
    env = _suite_env(
        prefix=f"run{secrets.token_hex(4)}.",
        bootstrap_servers=kafka.bootstrap_servers,
        database_urls=urls,
        ports=ports,
    )
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    ops_port = free_port()  # the gateway's /readyz is on its operations port
    env["GATEWAY_OPS_PORT"] = str(ops_port)
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    ready = {**base, "gateway": f"http://127.0.0.1:{ops_port}"}
    log = tmp_path / "honcho.log"
    async with httpx.AsyncClient(timeout=5.0) as client:
        with _make_run(env, log) as honcho:
            for url in ready.values():
                await _wait_ready(client, url, honcho)
            [killed] = _app_pids(ports["orders"])
            os.kill(killed, signal.SIGKILL)

            others = [name for name in APPS if name != "orders"]
            deadline = asyncio.get_running_loop().time() + RECOVERY_TIMEOUT_S
            rounds = 0
            while True:
                assert honcho.poll() is None, log.read_text()[-3000:]
                for name in others:
                    try:
                        answer: int | str = (await client.get(f"{base[name]}/healthz")).status_code
                    except httpx.TransportError as exc:
                        answer = repr(exc)
                    assert answer == 200, f"{name} stopped answering: {answer}"
                # The gateway still serves the other services.
                jwks = await client.get(f"{base['gateway']}/identity/.well-known/jwks.json")
                assert jwks.status_code == 200, jwks.text
                rounds += 1
                replacement = [pid for pid in _app_pids(ports["orders"]) if pid != killed]
                if replacement:
                    try:
                        back = await client.get(f"{base['orders']}/readyz")
                    except httpx.TransportError:
                        back = None
                    if back is not None and back.status_code == 200:
                        break
                assert asyncio.get_running_loop().time() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.2)
            goods = await client.get(f"{base['gateway']}/orders/goods")
            assert goods.status_code == 200, goods.text
            assert "orders: exited (killed by SIGKILL)" in log.read_text()
        # Stopping honcho (Ctrl-C under make run) stops every app, restarting none.
        assert honcho.returncode is not None
        assert all(not _app_pids(port) for port in ports.values()), log.read_text()[-3000:]
