"""Keep one app running: ``python -m kit.supervisor --name NAME -- COMMAND [ARG...]``.

``make run`` starts every app through honcho, which stops them all as soon as one exits:
one app killed by the kernel would take the gateway and the other services with it. Each
line of ``deploy/Procfile`` therefore runs its app under this supervisor, which starts the
app again when it exits, after a backoff that doubles from ``--initial-backoff`` to
``--max-backoff`` seconds and starts over once the app has run ``--stable-after`` seconds.
The supervisor itself only exits when it is told to stop.

Stopping: SIGTERM or SIGINT (honcho's stop; Ctrl-C) is passed to the app once and the
supervisor exits with the app's status, starting nothing again. The app runs in its own
process group, so honcho's signal to the supervisor's group reaches it only through the
supervisor; on Linux the kernel kills the app if the supervisor itself dies.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

__all__ = ["Backoff", "Supervisor", "main"]

logger = logging.getLogger("kit.supervisor")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Backoff:
    """The wait before the next start: ``initial_s``, doubled after every quick exit up to
    ``maximum_s``; back to ``initial_s`` after a run of ``stable_s`` or more."""

    initial_s: float = 1.0
    maximum_s: float = 30.0
    stable_s: float = 60.0

    def next_delay(self, previous_s: float | None, ran_s: float) -> float:
        if previous_s is None or ran_s >= self.stable_s:
            return self.initial_s
        return min(previous_s * 2, self.maximum_s)


def _die_with_parent() -> None:
    """In the app, before exec: the kernel sends it SIGKILL when the supervisor dies (Linux;
    elsewhere a no-op), so a killed supervisor never leaves its app holding the port."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


class Supervisor:
    def __init__(self, name: str, command: Sequence[str], backoff: Backoff) -> None:
        self.name = name
        self.command = list(command)
        self.backoff = backoff
        self.stopping = threading.Event()
        self._app: subprocess.Popen[bytes] | None = None

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: pass the signal to the app once and start nothing again."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._app is not None and self._app.poll() is None:
            self._app.send_signal(signum)

    def run(self) -> int:
        """Run the app until told to stop; the app's last status as an exit status."""
        delay: float | None = None
        restarts = 0
        while True:
            started = time.monotonic()
            # preexec_fn is safe here: the supervisor runs no threads.
            self._app = subprocess.Popen(
                self.command,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
            logger.info("%s: started (pid %d)", self.name, self._app.pid)
            if self.stopping.is_set():  # told to stop while it was being started
                self._app.terminate()
            returncode = self._app.wait()
            if self.stopping.is_set():
                return returncode if returncode >= 0 else 128 - returncode
            ran_s = time.monotonic() - started
            delay = self.backoff.next_delay(delay, ran_s)
            restarts += 1
            logger.warning(
                "%s: exited (%s) after %.1f s; starting it again in %.1f s (restart %d)",
                self.name,
                _describe(returncode),
                ran_s,
                delay,
                restarts,
            )
            if self.stopping.wait(delay):
                return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kit.supervisor", description=__doc__)
    parser.add_argument("--name", required=True, help="the app's name in log lines")
    parser.add_argument("--initial-backoff", type=float, default=Backoff.initial_s)
    parser.add_argument("--max-backoff", type=float, default=Backoff.maximum_s)
    parser.add_argument("--stable-after", type=float, default=Backoff.stable_s)
    parser.add_argument("command", nargs="+", help="the app's command, after --")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="supervisor %(message)s", stream=sys.stderr)
    supervisor = Supervisor(
        args.name,
        args.command,
        Backoff(
            initial_s=args.initial_backoff,
            maximum_s=args.max_backoff,
            stable_s=args.stable_after,
        ),
    )
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
