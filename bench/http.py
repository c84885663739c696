"""Gateway throughput and added latency under wrk, against nginx, same upstream, one run.

``python -m bench.http`` starts, each in its own process on 127.0.0.1:

- the stand-in orders upstream (``bench.serve upstream``, one uvicorn worker);
- nginx from Debian, ``proxy_pass`` to it with upstream keep-alive, one worker;
- the gateway (``bench.serve gateway``, one uvicorn worker, access events to a throw-away
  PostgreSQL database and on to the development Kafka broker);
- the pure proxy (``bench.serve pure``: the gateway's forwarding with every policy step off);
- the gateway with its access events through the outbox (``--access-outbox``, the path
  before they went straight to Kafka), and through the outbox with one transaction per
  event (``--access-batch 1``, as before group commit), to keep the reasons for
  :mod:`gateway.access_events` measured;
- the gateway with 2 and 4 worker processes (``--workers``, ``GATEWAY_WORKERS``);

then, for GET of one order by its owner (a user token; the gateway verifies it, picks the
purpose, checks consent, filters and masks the 5-line order and writes an access event):

1. peak requests/s of each, wrk ``-c CONNECTIONS`` for ``SECONDS`` after a warm-up, the
   variants in turn (direct upstream, nginx, pure proxy, gateway, then the outbox paths
   and the workers), twice, best kept; CPU per request from ``/proc`` (workers included);
2. latency at half the gateway's peak: wrk paced by a Lua ``delay()`` (each connection
   waits ``connections / rate`` between requests), nginx and the gateway, p50 and p99.

wrk is closed-loop, so the paced run is not a true open-loop generator; at half load the
queueing it hides is small, and both variants are measured the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.report import Row
from bench.serve import gateway_command
from kit.auth import USER_SCOPES, generate_signing_key
from kit.kafka import TopicSpec, ensure_topics
from kit.migrations import upgrade
from kit.testing import TEST_ISSUER, LocalKafka, LocalPostgres, mint_token, new_subject

ORDER_PATH = "/orders/ord_bench"
#: The gateways' topics, this run's own; the ones they read exist before they start (as in
#: production: a missing topic keeps a consumer refreshing the cluster's metadata).
TOPIC_PREFIX = f"bench{os.getpid()}."
READ_TOPICS = ("consent.state", "consent.restrictions", "consent.events", "identity.events")
#: Those of them that are compacted (a subject's whole state per record).
COMPACTED_TOPICS = frozenset({"consent.state", "consent.restrictions"})
#: The scaling row's gateway worker processes (GATEWAY_WORKERS).
WORKERS = (1, 2, 4)  # the upstream's path; behind a proxy: /orders + this

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream orders {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location /orders/ {{
            proxy_pass http://orders/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

PACED_LUA = """\
function delay()
    return {delay_ms}
end
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: CPU seconds the measured process (and its children: nginx's worker) spent per
    #: request during the run; 0 when not measured (the upstream alone).
    cpu_us_per_request: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and of its children, from ``/proc``."""
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(stat[11]) + int(stat[12])) / ticks  # utime, stime
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else ():
        with contextlib.suppress(OSError):
            total += cpu_seconds(int(child))
    return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_tools() -> None:
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(
            f"bench: {' and '.join(missing)} not found: apt-get install nginx-light wrk "
            "(make bench does it when run as root)"
        )


def _unit_ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"wrk latency {value!r}")
    number, unit = float(match[1]), match[2]
    return number * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    errors = sum(
        int(n)
        for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
        + re.findall(r"Non-2xx or 3xx responses: (\d+)", output)
    )
    return WrkResult(float(rps[1]), _unit_ms(p50[1]), _unit_ms(p99[1]), errors)


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: dict[str, str],
    script: str = "",
    timeout_s: float = 2.0,
) -> WrkResult:
    """wrk's figures; ``timeout_s`` is its per-request timeout (a request slower than that
    counts as an error and wrk opens a new connection, while the server still works on it:
    on a busy machine the full-stack runs raise it so no retry storm builds up)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency"]
    command.append(f"--timeout={timeout_s:g}s")
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def wait_until_up(url: str, headers: dict[str, str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, headers=headers, timeout=2.0, trust_env=False)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} not up after {timeout_s:.0f}s: {last}")


def all_up(urls: dict[str, str], headers: dict[str, str], logs: Path) -> None:
    """Wait for each process; one that does not come up is named with its log's end."""
    for name, url in urls.items():
        try:
            wait_until_up(url, headers)
        except RuntimeError:
            log = logs / f"{name}.log"
            if log.exists():
                sys.stderr.write(f"--- {name}.log (end)\n{log.read_text()[-3000:]}\n")
            raise


@contextlib.contextmanager
def process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` running (with ``env``, else this one's) while the block runs; SIGTERM
    (uvicorn's manager stops its workers) then, after 15 s, SIGKILL."""
    with log.open("wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def serve(kind: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.serve", kind, "--port", str(port), *extra]


@dataclass(frozen=True)
class Figures:
    peak: dict[str, WrkResult]
    paced: dict[str, WrkResult]
    paced_rate: float
    connections: int


def profile_gateway(
    pid: int, url: str, headers: dict[str, str], connections: int, out: Path
) -> None:
    """py-spy's samples of the gateway under wrk (``--profile``), and a summary of them."""
    raw = out / "gateway.pyspy.txt"
    load = subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            "-d7s",
            *(f"-H{k}: {v}" for k, v in headers.items()),
            url,
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(1)
    subprocess.run(
        [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-d", "5",
         "-f", "raw", "-o", str(raw)],
        check=True, capture_output=True,
    )  # fmt: skip
    load.wait()
    (out / "gateway.profile.txt").write_text(summarise(raw.read_text()))


def summarise(raw: str, top: int = 25) -> str:
    """The functions most often on the stack (inclusive) and at its top (own), in %."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    lines = [f"{total} samples"]
    for title, counts in (("own", own), ("inclusive", inclusive)):
        lines.append(f"-- {title}")
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        lines += [f"{n / total:6.1%}  {frame}" for frame, n in ranked]
    return "\n".join(lines) + "\n"


def measure(
    scratch: Path,
    database_url: str,
    kafka: str,
    *,
    connections: int,
    seconds: float,
    profile: Path | None = None,
) -> Figures:
    key = generate_signing_key()
    key_file = scratch / "key.pem"
    key_file.write_bytes(key.private_pem)
    owner = mint_token(
        key,
        issuer=TEST_ISSUER,
        audience="signature-api",
        subject=new_subject(),
        scopes=list(USER_SCOPES),
        ttl_s=3600,
    )
    auth = {"Authorization": f"Bearer {owner}"}
    # name: (bench.serve kind, its further arguments)
    proxies: dict[str, tuple[str, list[str]]] = {
        "pure": ("pure", []),
        "gateway": ("gateway", []),
        "gateway-outbox": ("gateway", ["--access-outbox"]),
        "gateway-unbatched": ("gateway", ["--access-outbox", "--access-batch", "1"]),
        **{f"gateway-w{n}": ("gateway", ["--workers", str(n)]) for n in WORKERS[1:]},
    }
    ports = {name: free_port() for name in ("upstream", "nginx", *proxies)}
    upstream_url = f"http://127.0.0.1:{ports['upstream']}"
    (scratch / "nginx").mkdir()
    conf = scratch / "nginx" / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=scratch / "nginx", upstream=ports["upstream"], port=ports["nginx"])
    )
    common = ["--upstream-url", upstream_url, "--kafka", kafka]
    urls = {
        "direct": f"{upstream_url}{ORDER_PATH}",
        **{
            name: f"http://127.0.0.1:{ports[name]}/orders{ORDER_PATH}"
            for name in ("nginx", *proxies)
        },
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(serve("upstream", ports["upstream"]), scratch / "up.log"))
        nginx = stack.enter_context(
            process(["nginx", "-p", str(scratch / "nginx"), "-c", str(conf)], scratch / "ng.log")
        )
        gateway_args = [
            "--database-url",
            database_url,
            "--key-file",
            str(key_file),
            "--key-id",
            key.kid,
            "--topic-prefix",
            TOPIC_PREFIX,
        ]
        children: dict[str, subprocess.Popen[bytes]] = {}
        for name, (kind, extra) in proxies.items():
            command = serve(kind, ports[name], *common, *extra)
            if kind == "gateway":
                command += gateway_args
            env = None
            if "--workers" in extra:  # uvicorn's manager and its workers, as in production
                workers = int(extra[extra.index("--workers") + 1])
                argv = [kind, "--port", str(ports[name]), *common, *gateway_args]
                command, serve_argv = gateway_command(argv, port=ports[name], workers=workers)
                env = {**os.environ, "BENCH_SERVE_ARGV": serve_argv}
            children[name] = stack.enter_context(process(command, scratch / f"{name}.log", env))
        all_up(urls, auth, scratch)
        for url in urls.values():  # warm-up: connections, caches, the relay's producer
            wrk(url, connections=connections, seconds=1, headers=auth)
        if profile is not None:
            profile_gateway(children["gateway"].pid, urls["gateway"], auth, connections, profile)
        peak: dict[str, WrkResult] = {}
        pids = {name: child.pid for name, child in children.items()}
        pids["nginx"] = nginx.pid
        for _ in range(2):  # the variants in turn, twice: drift hits all alike
            for name, url in urls.items():
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                result = wrk(url, connections=connections, seconds=seconds, headers=auth)
                if name in pids and result.rps:
                    spent = cpu_seconds(pids[name]) - before
                    result = dataclasses.replace(
                        result, cpu_us_per_request=spent / (result.rps * seconds) * 1e6
                    )
                if name not in peak or result.rps > peak[name].rps:
                    peak[name] = result
        rate = peak["gateway"].rps / 2
        paced_connections = 8
        script = scratch / "paced.lua"
        script.write_text(PACED_LUA.format(delay_ms=max(1, round(paced_connections / rate * 1e3))))
        paced = {
            name: wrk(
                urls[name],
                connections=paced_connections,
                seconds=seconds,
                headers=auth,
                script=str(script),
            )
            for name in ("nginx", "gateway")
        }
    return Figures(peak=peak, paced=paced, paced_rate=rate, connections=connections)


def rows(figures: Figures) -> list[Row]:
    peak, paced = figures.peak, figures.paced
    c = figures.connections
    gateway_vs_nginx = peak["gateway"].rps / peak["nginx"].rps
    pure_vs_nginx = peak["pure"].rps / peak["nginx"].rps
    nginx_cpu = peak["nginx"].cpu_us_per_request or float("nan")
    policy_cost = 1 - peak["gateway"].rps / peak["pure"].rps
    added_p50 = paced["gateway"].p50_ms - paced["nginx"].p50_ms
    added_p99 = paced["gateway"].p99_ms - paced["nginx"].p99_ms
    errors = sum(r.errors for r in (*peak.values(), *paced.values()))
    scaling = [peak["gateway" if n == 1 else f"gateway-w{n}"] for n in WORKERS]
    out = [
        Row("1", f"upstream alone, GET one order (wrk -c{c})", f"{peak['direct'].rps:,.0f} req/s"),
        Row("1", f"nginx proxy_pass (wrk -c{c})", f"{peak['nginx'].rps:,.0f} req/s",
            f"{peak['nginx'].rps / peak['direct'].rps:.2f} of upstream"),
        Row("1", "gateway, owner GET: JWT, purpose, consent, filter, access event",
            f"{peak['gateway'].rps:,.0f} req/s", f"{gateway_vs_nginx:.2f} of nginx",
            ">= 0.6 of nginx", gateway_vs_nginx >= 0.6),
        Row("1", "gateway, all policy off (pure proxy, same upstream clients)",
            f"{peak['pure'].rps:,.0f} req/s", f"{pure_vs_nginx:.2f} of nginx",
            ">= 0.9 of nginx", pure_vs_nginx >= 0.9),
        Row("1", "CPU per request at peak (from /proc): nginx / pure proxy / gateway",
            f"{peak['nginx'].cpu_us_per_request:,.0f} / {peak['pure'].cpu_us_per_request:,.0f}"
            f" / {peak['gateway'].cpu_us_per_request:,.0f} us",
            f"pure proxy {peak['pure'].cpu_us_per_request / nginx_cpu:.1f}x, gateway "
            f"{peak['gateway'].cpu_us_per_request / nginx_cpu:.1f}x nginx",
            "printed beside nginx's"),
        Row("1", "policy cost (1 - gateway / pure proxy)", f"{policy_cost:.0%}", "",
            "<= 20 %", policy_cost <= 0.20),
        Row("1", "gateway, owner GET, access events through the outbox (the former path)",
            f"{peak['gateway-outbox'].rps:,.0f} req/s",
            f"straight to Kafka {peak['gateway'].rps / peak['gateway-outbox'].rps:.2f}x; CPU "
            f"{peak['gateway-outbox'].cpu_us_per_request:,.0f} us/request"),
        Row("1", "gateway, owner GET, outbox, one transaction per access event (no group commit)",
            f"{peak['gateway-unbatched'].rps:,.0f} req/s",
            f"group commit {peak['gateway-outbox'].rps / peak['gateway-unbatched'].rps:.2f}x"),
        Row("1", f"gateway, owner GET, {' / '.join(map(str, WORKERS))} GATEWAY_WORKERS "
            "(2 cores shared with wrk, nginx and the upstream)",
            " / ".join(f"{r.rps:,.0f}" for r in scaling) + " req/s",
            " / ".join(f"{r.rps / peak['nginx'].rps:.2f}" for r in scaling) + " of nginx",
            ">= 0.6 of nginx", max(r.rps for r in scaling) / peak["nginx"].rps >= 0.6),
        Row("2", f"latency at half the gateway's peak (~{figures.paced_rate:,.0f} req/s asked; "
            f"nginx got {paced['nginx'].rps:,.0f}, gateway {paced['gateway'].rps:,.0f})",
            f"nginx p50 {paced['nginx'].p50_ms:.2f} / p99 {paced['nginx'].p99_ms:.2f} ms; "
            f"gateway p50 {paced['gateway'].p50_ms:.2f} / p99 {paced['gateway'].p99_ms:.2f} ms"),
        Row("2", "added latency over nginx, p50", f"{added_p50:+.2f} ms", "", "<= 1 ms",
            added_p50 <= 1.0),
        Row("2", "added latency over nginx, p99", f"{added_p99:+.2f} ms", "", "<= 5 ms",
            added_p99 <= 5.0),
    ]  # fmt: skip
    if errors:
        out.append(
            Row("1-2", "wrk socket errors or non-2xx answers", f"{errors:,}", "", "0", False)
        )
    return out


async def _with_database(
    connections: int, seconds: float, kafka: str, profile: Path | None
) -> Figures:
    # A running server named as the tests name it, else the cluster of deploy/postgres.
    postgres = LocalPostgres(admin_url=os.environ.get("TEST_POSTGRES_ADMIN_URL", ""))
    if not postgres.admin_url:
        postgres.start()
    await ensure_topics(
        kafka,
        [
            TopicSpec(f"{TOPIC_PREFIX}{name}", compacted=name in COMPACTED_TOPICS)
            for name in READ_TOPICS
        ],
    )
    async with postgres.database() as url:
        await upgrade("gateway", url)
        with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
            return await asyncio.to_thread(
                functools.partial(
                    measure,
                    Path(scratch),
                    url,
                    kafka,
                    connections=connections,
                    seconds=seconds,
                    profile=profile,
                )
            )


def run(
    connections: int = 32, seconds: float = 5.0, kafka: str = "", profile: Path | None = None
) -> list[Row]:
    require_tools()
    if not kafka:
        broker = LocalKafka()
        broker.start()
        kafka = broker.bootstrap_servers
    return rows(asyncio.run(_with_database(connections, seconds, kafka, profile)))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--kafka", default="", help="bootstrap servers (default: dev broker)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a folder: py-spy samples the gateway under load first, and summarises them there",
    )
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    for row in run(args.connections, args.seconds, args.kafka, args.profile):
        met = "" if row.met is None else ("met" if row.met else "NOT met")
        print(" | ".join((row.section, row.what, row.figure, row.ratio, row.goal, met)))


if __name__ == "__main__":
    main()
