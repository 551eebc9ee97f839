"""Real gloo process groups on loopback for the tests: one helper that starts a world of worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reportgen.launch import free_loopback_port

TESTS = Path(__file__).resolve().parent


def run_world(module: str, call: str, world_size: int, extra_env: dict[str, str] | None = None,
              timeout: float = 180.0) -> list[str]:
    """Run ``import <module> as t; t.<call>`` in ``world_size`` processes that form one gloo world on 127.0.0.1.

    ``call`` is the worker call with its arguments as Python source (e.g. ``"_worker('/tmp/x')"``); each
    process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT as torchrun sets them, plus
    ``extra_env``. Waits at most ``timeout`` seconds, kills what is left, asserts every worker exited 0
    (with its output in the message) and returns each worker's combined stdout and stderr in rank order.
    """
    port = free_loopback_port()
    # A worker ends as ``reportgen`` does (cli.entry): streams flushed, then os._exit, so no C++ teardown runs
    # beside threads that outlive the group. A DistributedDataParallel model keeps its gloo group (2 worker
    # threads and the transport's loop; rank 0 also the store's server) running after destroy_process_group,
    # and a plain interpreter exit destroying them while they run can abort with "terminate called without
    # an active exception". An exception in ``call`` still ends the worker with exit 1 and its traceback.
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import {module} as t; t.{call}\n"
            "import os; sys.stdout.flush(); sys.stderr.flush(); os._exit(0)")
    procs = []
    for rank in range(world_size):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), **(extra_env or {})}
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=TESTS.parent,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output
    return outputs
