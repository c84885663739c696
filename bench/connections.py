"""What the gateway's connection guards cost (issue 23 item 8): the stand-in upstream served
by uvicorn's own httptools protocol and by :class:`gateway.protocol.GuardedHttpToolsProtocol`
(timers per request, header bytes counted, connections counted per address), each under
the same wrk run (keep-alive connections, a few seconds), side by side.

``python -m bench.connections [--seconds 5] [--connections 32]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.http import WrkResult, free_port, process, serve, wait_until_up, wrk


def measure(protocol: str, *, seconds: float, connections: int, logs: Path) -> WrkResult:
    port = free_port()
    command = serve("upstream", port, "--protocol", protocol)
    with process(command, logs / f"{protocol}.log"):
        url = f"http://127.0.0.1:{port}/goods/gds_tea"
        wait_until_up(url, {})
        wrk(url, connections=connections, seconds=1, headers={})  # warm-up
        return wrk(url, connections=connections, seconds=seconds, headers={})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.connections")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        results = [
            (
                protocol,
                measure(
                    protocol,
                    seconds=args.seconds,
                    connections=args.connections,
                    logs=Path(directory),
                ),
            )
            for protocol in ("httptools", "guarded", "httptools", "guarded")  # interleaved
        ]
    print(f"wrk -c{args.connections} -d{args.seconds:.0f}s, one uvicorn worker, same app")
    for protocol, result in results:
        print(
            f"{protocol:10} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
            f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
        )


if __name__ == "__main__":
    main()
