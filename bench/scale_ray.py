"""Build and search time of a ShardedIndex against its shard count, on Ray actors of this machine (and the
local engine and one index for reference), with the figures a cluster plan needs per shard.

    python bench/scale_ray.py [--n 100000] [--dim 384] [--queries 256] [--k 10] [--shards 1,2,4]
        [--specs int8,pq96x4fs+rerank:int8] [--threads 1] [--repeat 3]

Random Gaussian vectors (seeded), trained on the first 20,000. Per spec and shard count: build (driver
training + shipping to the actors + add, seconds), search of one batch (median of --repeat, milliseconds;
QPS), the shards' stored bytes per vector (codes, ids, seqs: what each machine keeps in memory is that times
its share of the vectors), and the bytes a search moves per query batch (queries to every shard, each
shard's candidates or results back, and for two-stage specs the candidate list to the shards and their
re-ranked results back). Every sharded result is checked to equal one index's (ids; scores bit for bit
except float32). One machine of 2 cores shares them among all actors: the figures show the engine's
overhead, not a cluster's speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _threads  # noqa: E402,F401  (sets the thread variables before numpy loads)
import numpy as np  # noqa: E402

import medqk.index as mi  # noqa: E402
from medqk.distributed import ShardedIndex  # noqa: E402
from medqk.index.spec import split_specs  # noqa: E402


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def wire_bytes(index, nq: int, k: int) -> int:
    """Bytes a search of nq queries moves between the driver and the shards (array payloads only)."""
    from medqk.distributed import _candidate_factor

    per_result = 4 + 8 + 8 + 8  # score, row, seq, id (IVF adds a list: 8 more)
    queries = nq * index.dim * 4 * index.shards
    factor = _candidate_factor(index._template)
    if factor is None:
        return queries + index.shards * nq * k * per_result
    kc = min(len(index), factor * k)
    first = index.shards * nq * kc * per_result
    second = queries + nq * kc * 8 + index.shards * nq * k * per_result  # candidates out (padded less), results
    return queries + first + second


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--specs", default="int8,pq96x4fs+rerank:int8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             configure_logging=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    q = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    train = x[:20_000]
    print(f"n={args.n:,} dim={args.dim} queries={args.queries} k={args.k} threads={args.threads} "
          f"(cpus: {os.cpu_count()})")
    print(f"{'spec':<26}{'engine':<8}{'shards':>7}{'build s':>9}{'search ms':>11}{'QPS':>9}{'B/vec':>8}"
          f"{'wire KB':>9}  equal")
    for spec in split_specs(args.specs):
        t0 = time.perf_counter()
        one = mi.create(spec, args.dim).train(train).add(x)
        build = time.perf_counter() - t0
        ts, ref = median_time(lambda: one.search(q, args.k, threads=args.threads), args.repeat)
        print(f"{spec:<26}{'one':<8}{1:>7}{build:>9.2f}{ts * 1e3:>11.1f}{args.queries / ts:>9.0f}"
              f"{one.nbytes / len(one):>8.1f}{0:>9}  -")
        for engine in ("local", "ray"):
            for shards in (int(s) for s in args.shards.split(",")):
                t0 = time.perf_counter()
                opts = {"actor_options": {"num_cpus": 0}} if engine == "ray" else {}
                many = ShardedIndex(spec, args.dim, shards=shards, engine=engine, **opts).train(train).add(x)
                many.search(q[:1], 1)  # the actors are up
                build = time.perf_counter() - t0
                ts, got = median_time(lambda: many.search(q, args.k, threads=args.threads), args.repeat)
                equal = np.array_equal(got[1], ref[1]) and (spec.startswith("float32")
                                                              or np.array_equal(got[0], ref[0]))
                stored = sum(d["nbytes"] for d in many._all("describe").values()) + 8 * len(many)  # + seqs
                print(f"{spec:<26}{engine:<8}{shards:>7}{build:>9.2f}{ts * 1e3:>11.1f}{args.queries / ts:>9.0f}"
                      f"{stored / len(many):>8.1f}{wire_bytes(many, args.queries, args.k) / 1024:>9.0f}  {equal}")
                many.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
