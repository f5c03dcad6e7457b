"""Where a suite's grid points run: in this process (``local``) or as Ray tasks on a cluster (``ray``).

An executor takes :class:`~exprbench.benchmarks.point.PointJob` s and hands back
``(grid point name, result)`` pairs; the result is what
:func:`~exprbench.benchmarks.point.execute_point` returned (a record, ``busy``, ``refused``) or
``{"status": "crashed", "error": ...}`` when the worker died on every try. Claims, skipping,
dependencies and progress are the runner's (:func:`~exprbench.benchmarks.runner.run_suite`), so
both executors fill the same run directories with the same records.
"""

from __future__ import annotations

import time

from exprbench.core.errors import UserError

INSTALL_RAY = "pip install 'exprbench[ray]'"


class LocalExecutor:
    """Runs one grid point at a time, in this process (the default)."""

    name = "local"
    remote = False
    slots = 1
    max_retries = 0
    default_device: str | None = None

    def __init__(self) -> None:
        self._finished: list[tuple[str, dict]] = []

    def submit(self, job) -> None:
        """Run ``job`` now (blocking); its result comes back from the next :meth:`wait`."""
        from exprbench.benchmarks.point import execute_point

        self._finished.append((job.point.name, execute_point(job)))

    def wait(self, timeout: float) -> list[tuple[str, dict]]:
        """The finished jobs' results; sleeps ``timeout`` seconds when there are none."""
        if not self._finished:
            time.sleep(timeout)
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        pass


def _ray_point(job) -> dict:
    """The Ray task: one grid point (claim, train, evaluate, record) in a worker process."""
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    from exprbench.benchmarks.point import execute_point

    return execute_point(job)


class RayExecutor:
    """One Ray task per grid point, each with its resource request; Ray places them on the cluster.

    Args:
        address: the cluster: ``auto`` (the one started with ``ray start`` on this machine),
            ``HOST:PORT`` (its head, port 6379 by default), or None (``$RAY_ADDRESS`` or an existing
            local cluster, else a new one on this machine). Ignored when Ray is already initialized.
        gpus_per_run: GPUs each point asks for (Ray makes only those visible to it); > 0 makes the
            default device ``cuda``.
        cpus_per_run: CPUs each point asks for; also its torch thread count.
        max_retries: how often a point whose worker died (killed, node lost) is started again; it
            resumes from its last checkpoint. After that it is recorded as failed with the reason.

    Raises:
        UserError: Ray is not installed (says how to install it), bad resource values, or nothing
            listening at ``address`` (:func:`probe_ray_address`, checked here, before any work).
    """

    name = "ray"
    remote = True
    slots = 1_000_000  # Ray queues tasks until resources free up

    def __init__(self, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0,
                 max_retries: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL_RAY}") from None
        if not gpus_per_run >= 0:
            raise UserError(f"--gpus-per-run {gpus_per_run} must be >= 0")
        if not cpus_per_run > 0:
            raise UserError(f"--cpus-per-run {cpus_per_run} must be > 0")
        if max_retries < 0:
            raise UserError(f"--max-retries {max_retries} must be >= 0")
        if not ray.is_initialized():
            probe_ray_address(address)  # seconds, not Ray's minutes of reconnect warnings
        self._ray = ray
        self._address = address
        self._started = False
        self._task = None
        self.max_retries = int(max_retries)
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run
        self.default_device = "cuda" if gpus_per_run > 0 else None
        self._refs: dict = {}

    def _connect(self):
        """Join (or start) the cluster at the first task, so a refused suite starts nothing."""
        ray = self._ray
        if self._task is None:
            if not ray.is_initialized():
                try:
                    ray.init(address=self._address)
                except (ConnectionError, TimeoutError) as e:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise UserError(f"no Ray cluster at --address {self._address}: {msg} "
                                    "(start one with `ray start --head`)") from None
                self._started = True
            self._task = ray.remote(_ray_point).options(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                                                        max_retries=self.max_retries, retry_exceptions=False)
        return self._task

    def submit(self, job) -> None:
        """Start ``job`` as a Ray task (queued until the cluster has its resources)."""
        task = self._connect()
        job.runner = "ray"
        job.threads = max(1, int(self.cpus_per_run))
        self._refs[task.remote(job)] = job.point.name

    def wait(self, timeout: float) -> list[tuple[str, dict]]:
        """Results of the tasks that finished within ``timeout`` seconds."""
        ray = self._ray
        if not self._refs:
            time.sleep(timeout)
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        out = []
        for ref in ready:
            name = self._refs.pop(ref)
            try:
                res = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # execute_point raised (a bug: errors are recorded)
                cause = getattr(e, "cause", None) or e
                res = {"status": "crashed", "error": f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"}
            except ray.exceptions.RayError as e:  # the worker process or its node died on every try
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                res = {"status": "crashed", "error": f"{type(e).__name__}: {first}"}
            out.append((name, res))
        return out

    def close(self) -> None:
        """Cancel what is still running (an interrupted suite) and leave a cluster this started."""
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001  (already finished or gone)
                pass
        self._refs.clear()
        if self._started:
            self._ray.shutdown()


RAY_CONNECT_TIMEOUT_S = 5.0


def probe_ray_address(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Check that something listens at a Ray head given as ``HOST:PORT`` (or ``ray://HOST:PORT``; None reads
    ``$RAY_ADDRESS``) with one TCP connect of at most ``timeout`` seconds, before ``ray.init`` would retry
    for minutes. ``auto``, ``local`` and no address at all are left to Ray (it answers at once).

    Raises:
        UserError: one line, ``no Ray cluster at --address ...``, with the connect error.
    """
    import os
    import socket

    given = address if address is not None else os.environ.get("RAY_ADDRESS")
    if not given or given in ("auto", "local"):
        return
    what = f"--address {given}" if address is not None else f"$RAY_ADDRESS {given}"
    target = given.split("://", 1)[1] if "://" in given else given
    host, sep, port = target.rpartition(":")
    host, port = (host, port) if sep else (target, "6379")
    try:
        port_n = int(port)
    except ValueError:
        raise UserError(f"{what}: expected HOST:PORT (e.g. 127.0.0.1:6379), auto or local") from None
    try:
        with socket.create_connection((host.strip("[]"), port_n), timeout=timeout):
            pass
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise UserError(f"no Ray cluster at {what}: {why} (start one with `ray start --head`)") from None


def make_executor(kind: str, address: str | None = None, gpus_per_run: float | None = None,
                  cpus_per_run: float | None = None, max_retries: int = 2):
    """The executor named ``kind`` (``local`` or ``ray``) with its options.

    Raises:
        UserError: unknown kind, Ray options given with ``local``, or a RayExecutor error.
    """
    if kind == "local":
        given = [f for f, v in (("--address", address), ("--gpus-per-run", gpus_per_run),
                                ("--cpus-per-run", cpus_per_run)) if v is not None]
        if given:
            raise UserError(f"{given[0]} needs --executor ray")
        return LocalExecutor()
    if kind == "ray":
        return RayExecutor(address, gpus_per_run or 0.0, 1.0 if cpus_per_run is None else cpus_per_run, max_retries)
    raise UserError(f"unknown --executor {kind!r} (use local or ray)")
