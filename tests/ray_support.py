"""A real two-node Ray cluster on loopback for the distributed tests, started and stopped by
process id (never ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_command() -> list[str]:
    ray = Path(sys.executable).with_name("ray")
    return [str(ray)] if ray.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


class Node:
    """One ``ray start --block`` process (its own session: stopping it stops its node)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*_ray_command(), "start", "--block", *args], stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, wait: float = 10) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)  # the node's processes: the group this test started
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        try:  # anything of that group still alive (workers that outlived their raylet)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    """A head node and a worker node on 127.0.0.1, each with ``cpus`` logical CPUs."""

    def __init__(self, cpus: int = 4) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="imgctx-ray-"))  # short: Ray's sockets live here
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        src = str(Path(__file__).resolve().parents[1] / "src")
        # token authentication with a token of this cluster's own (the caller's RAY_AUTH_TOKEN if
        # set, so that its drivers can join): nothing else can join it, and a token file another
        # Ray left in ~/.ray cannot get in the way
        self.auth = {"RAY_AUTH_MODE": "token",
                     "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)}
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.auth,
                    "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
        self.worker: Node | None = None
        self.head = Node(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                          "--num-cpus", str(cpus), "--include-dashboard", "false",
                          "--ray-client-server-port", str(free_port()),
                          "--dashboard-agent-listen-port", str(free_port()),
                          "--temp-dir", str(self.dir / "t")], self.dir / "head.log", self.env)
        try:
            self._wait_nodes(1)
            self.start_worker()
        except BaseException:
            self.stop()  # never leave a half-started cluster behind
            raise

    def start_worker(self) -> None:
        self.worker = Node(["--address", self.address, "--node-ip-address", "127.0.0.1",
                            "--num-cpus", str(self.cpus), "--dashboard-agent-listen-port", str(free_port())],
                           self.dir / f"worker-{time.monotonic_ns()}.log", self.env)
        self._wait_nodes(2)

    def alive_nodes(self) -> int:
        code = (f"import ray; ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False); "
                "print(sum(1 for n in ray.nodes() if n['Alive']))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env,
                             timeout=120)
        return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0

    def _wait_nodes(self, n: int, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.head.proc.poll() is not None:
                raise RuntimeError(f"the Ray head exited: {self.head.log.read_text()[-2000:]}")
            if self.alive_nodes() >= n:
                return
            time.sleep(2)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout}s")

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.head.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
