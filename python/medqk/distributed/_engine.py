"""Where the shards of a ShardedIndex live: in this process ("local") or in Ray actors ("ray").

An engine starts shards (:class:`medqk.distributed._shard.Shard` objects, or actors running that class),
calls one method on several shards at once (telling a ``done`` callback of each answer as it comes, for
progress bars) and returns every result, or raises: a shard that cannot answer
(a dead actor) raises :class:`ShardUnavailableError` naming it, and nothing of the other shards' answers is
returned. Ray is imported only when a "ray" engine is made.
"""

from __future__ import annotations

import os
import socket

from .._errors import IndexFileError
from ._shard import Shard


class ShardUnavailableError(RuntimeError):
    """A shard did not answer (its Ray actor died or cannot be reached); ``shard`` is its number."""

    def __init__(self, shard: int, message: str):
        super().__init__(message)
        self.shard = shard


def import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("engine='ray' needs Ray: pip install 'medqk[ray]' (or pip install ray)") from None
    return ray


REACH_TIMEOUT_S = 5.0


def _check_reachable(address: str | None) -> None:
    """ConnectionError unless a TCP connection to ``[ray://]host:port`` opens within REACH_TIMEOUT_S: ray.init
    itself retries an unreachable cluster for minutes before it fails."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as e:
        raise ConnectionError(f"engine='ray': cannot reach the Ray cluster at {address!r}: {e}") from None


def _host_port(address: str) -> str:
    """host:port of a Ray address ("ray://host:port" for Ray Client, "host:port" for the GCS)."""
    return address.split("://", 1)[-1].rstrip("/")


def connect(address: str | None = None):
    """The ray module, connected: to the Ray instance this process has started or joined, else to the cluster
    at ``address`` (None: a new local instance); ConnectionError naming the address when that fails, ValueError
    when the process is already connected elsewhere than ``address`` (a second cluster would be ignored)."""
    # Ray's tqdm integration replaces builtins.print in the driver with a Python function (at its first progress
    # bar, or at ray.shutdown), and Numba then cannot compile any kernel that reaches numba.get_num_threads
    # ("Untyped global name 'print'"): keep the built-in print unless the user asked for Ray's
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    ray = import_ray()
    if ray.is_initialized() and address not in (None, "auto"):
        current = ray.get_runtime_context().gcs_address
        if _host_port(address) != _host_port(current):
            raise ValueError(f"address={address!r}: this process is already connected to the Ray instance at "
                             f"{current!r}; call ray.shutdown() first to use another cluster")
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(address=address)
        except Exception as e:  # ConnectionError, TimeoutError, RuntimeError, ValueError, by version
            where = "a new local Ray instance" if address is None else f"the Ray cluster at {address!r}"
            raise ConnectionError(f"engine='ray': cannot reach {where}: {e}") from e
    return ray


class LocalEngine:
    """Shards as objects of this process, called one after the other."""

    name = "local"

    def start(self, specs: list[dict]) -> list:
        return [Shard(**spec) for spec in specs]

    def call(self, handles: list, method: str, args: dict[int, tuple], done=None) -> dict:
        out = {}
        for i, a in args.items():
            out[i] = getattr(handles[i], method)(*a)
            if done is not None:
                done(i, out[i])
        return out

    def stop(self, handles: list) -> None:
        pass


class RayEngine:
    """Shards as Ray actors (one per shard) of the cluster at ``address`` (None: the Ray instance this
    process has started or joined, else a new local one). ``actor_options``: passed to ``.options()`` of
    each actor (e.g. ``{"num_cpus": 1}``, ``{"resources": ...}``)."""

    name = "ray"

    def __init__(self, address: str | None = None, actor_options: dict | None = None):
        ray = self.ray = connect(address)
        self.actor_options = dict(actor_options or {})
        self._actor_class = ray.remote(Shard)

    def start(self, specs: list[dict]) -> list:
        """Creates the actors without waiting for them: an actor that fails to start (its shard's files
        refused, say) raises from the first call, naming its shard, as a dead one does."""
        return [self._actor_class.options(**self.actor_options).remote(**spec) for spec in specs]

    def call(self, handles: list, method: str, args: dict[int, tuple], done=None) -> dict:
        refs = {i: getattr(handles[i], method).remote(*a) for i, a in args.items()}
        shard_of = {ref: i for i, ref in refs.items()}
        waiting, out = list(refs.values()), {}
        while waiting:  # answers taken as they come (the first failure raises at once)
            ready, waiting = self.ray.wait(waiting, num_returns=1)
            i = shard_of[ready[0]]
            try:
                out[i] = self.ray.get(ready[0])
            except self.ray.exceptions.RayTaskError as e:
                raise e.as_instanceof_cause() from None  # the shard's own exception (ValueError, KeyError, ...)
            except self.ray.exceptions.RayActorError as e:
                # nothing of this call is used; the other shards' tasks are left to finish, not cancelled: a
                # cancelled actor task still queued can block that actor's later tasks for good (Ray <= 2.40,
                # ray-project/ray#60850), and a running one is not interrupted anyway
                if getattr(e, "actor_init_failed", False):
                    cause = _raised_in_init(str(e))
                    if cause.startswith(IndexFileError.__module__ + ".IndexFileError: "):
                        # its shard's files refused (damaged, or of another index): said as the local engine does
                        raise IndexFileError(cause.split(": ", 1)[1]) from None
                    what, detail = "failed to start", cause
                else:
                    what, detail = "is not available", " ".join(line.strip() for line in str(e).splitlines()[:3])
                raise ShardUnavailableError(i, f"shard {i} (Ray actor {handles[i]._actor_id.hex()}) {what}: "
                                               f"{type(e).__name__}: {detail}; no partial result was returned") from e
            if done is not None:
                done(i, out[i])
        return {i: out[i] for i in refs}

    def stop(self, handles: list) -> None:
        for h in handles:
            self.ray.kill(h)


def _raised_in_init(message: str) -> str:
    """The exception line ("module.Class: text") that ends the traceback Ray gives for an actor whose
    ``__init__`` raised."""
    lines = [line for line in message.splitlines() if line.strip()]
    return lines[-1].strip() if lines else message


def make_engine(engine: str, address, actor_options):
    if engine == "local":
        if address is not None or actor_options:
            raise ValueError("address and actor_options are for engine='ray'")
        return LocalEngine()
    if engine == "ray":
        return RayEngine(address, actor_options)
    raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
