"""ShardedIndex on Ray actors: a local Ray instance started here (2 CPUs, loopback, no dashboard), 4 shards,
each search equal to one index's bit for bit; a killed actor fails the search naming its shard, and
retry=True restarts it from the last save."""

from __future__ import annotations

import builtins
import os
import threading
import warnings

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk.distributed import ShardedIndex, ShardUnavailableError, load
from medqk.index import IndexFileError

ray = pytest.importorskip("ray", reason="ray is not installed (the 'ray' extra: pip install 'medqk[ray]')")

D = 32
# Ray's own processes: ray.init leaves Popen objects of its daemons that are still running when they are
# collected (ResourceWarning), which pytest reports as unraisable; nothing of medqk's
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    saved = {name: os.environ.get(name) for name in ("RAY_USAGE_STATS_ENABLED", "PYTHONPATH", "RAY_TQDM_PATCH_PRINT")}
    printer = builtins.print
    source = os.path.dirname(os.path.dirname(medqk.__file__))  # the actors' workers import this medqk
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (source, saved["PYTHONPATH"]) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False)
        yield
    finally:
        ray.shutdown()
        # the tests after this module compile Numba kernels, which fail on a print other than the built-in one
        assert builtins.print is printer, "Ray replaced builtins.print (RAY_TQDM_PATCH_PRINT is not 0)"
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def build(spec, metric, x, shards=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small training sample: SpecDataWarning
        one = mi.create(spec, D, metric).train(x[:400]).add(x)
        many = ShardedIndex(spec, D, metric, shards=shards, engine="ray", actor_options={"num_cpus": 0})
        many.train(x[:400]).add(x)
    return one, many


def same(one, many, q, k, **kw):
    a = one.search(q, k, **{n: v for n, v in kw.items() if n != "retry"})
    b = many.search(q, k, **kw)
    np.testing.assert_array_equal(b[1], a[1])
    np.testing.assert_array_equal(b[0], a[0])


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((800, D)).astype(np.float32)
    x[9] = x[2]
    return x, rng.standard_normal((16, D)).astype(np.float32)


def test_ray_shards_equal_one_index(local_ray):
    x, q = data()
    specs = [("int8", "l2"), ("pq8x4fs+rerank:int8", "ip"), ("ivf8,pq8x4fs", "ip")]
    built = [build(spec, metric, x) for spec, metric in specs]  # the actors of all three start together
    try:
        for one, many in built:
            assert many.engine == "ray" and len(many.actors) == 4
            assert all(isinstance(a, ray.actor.ActorHandle) for a in many.actors)
            assert many.shard_sizes() == [200] * 4
            same(one, many, q, 10)
            assert many.remove(np.arange(0, 800, 3)) == one.remove(np.arange(0, 800, 3))
            same(one, many, q, 10, filter=np.arange(0, 800, 2))
            same(one, many, q, 10, filter=lambda i: i % 5 == 1)  # a callable shipped to the actors
            np.testing.assert_array_equal(many.vectors([4, 1, 799]), one.vectors([4, 1, 799]))
    finally:
        for _, many in built:
            many.close()


def gate_actor():
    """A Ray actor that tells the test when a blocked shard has entered its task (defined here: Ray ships a
    local class by value, the workers do not import the tests)."""

    class Gate:
        def __init__(self):
            import asyncio

            self.entered = asyncio.Event()

        async def enter(self):
            self.entered.set()

        async def wait_entered(self):
            import asyncio

            await asyncio.wait_for(self.entered.wait(), 60)

        async def hold(self):
            import asyncio

            await asyncio.sleep(60)  # the blocked shard waits here until the test kills it

    return ray.remote(num_cpus=0)(Gate).remote()


def block_in(actor, method: str, gate) -> None:
    """Makes the index of shard ``actor`` block inside its ``method`` (an instance attribute the shard calls
    during a search) until the actor is killed, after telling ``gate`` it got there."""

    def install(shard, method, gate):
        import ray

        def blocked(*args):
            ray.get(gate.enter.remote())
            ray.get(gate.hold.remote())

        setattr(shard.index, method, blocked)

    ray.get(actor.__ray_call__.remote(install, method, gate))


def kill_when_entered(actor, gate) -> threading.Thread:
    """A thread that kills ``actor`` as soon as it is blocked in its task (while the driver waits for it)."""

    def run():
        ray.get(gate.wait_entered.remote())
        ray.kill(actor)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_actor_killed_mid_search(local_ray, tmp_path):
    """Shard 1 is killed inside the second stage of a search (after every shard's first stage and the
    driver's merge of candidates): the search raises naming it, returns nothing, as do the searches after it;
    retry=True restarts it from the saved files. Shard 2 killed inside the first stage of a retry=True search:
    that search restarts it and answers as one index does. After a change no restart is possible."""
    x, q = data()
    one, many = build("int8", "ip", x)
    try:
        many.save(tmp_path / "idx")
        gate = gate_actor()
        block_in(many.actors[1], "rerank_topk", gate)  # int8's second stage: the float re-scoring
        killer = kill_when_entered(many.actors[1], gate)
        with pytest.raises(ShardUnavailableError, match="shard 1 .*no partial result was returned") as err:
            many.search(q, 10)
        killer.join(60)
        assert err.value.shard == 1 and not killer.is_alive()
        with pytest.raises(ShardUnavailableError, match="shard 1 "):
            many.search(q, 10, filter=np.arange(50))
        same(one, many, q, 10, retry=True)  # restarted from its saved files, as nothing changed
        gate = gate_actor()
        block_in(many.actors[2], "_scored_candidates", gate)  # int8's first stage
        killer = kill_when_entered(many.actors[2], gate)
        same(one, many, q, 10, retry=True)
        killer.join(60)
        assert not killer.is_alive()
        many.add(x[:3])
        one.add(x[:3])
        ray.kill(many.actors[3])
        with pytest.raises(ShardUnavailableError, match="shard 3 "):
            many.search(q, 10, retry=True)  # changed since the save: no restart
    finally:
        many.close()


def test_another_address_while_connected_is_refused(local_ray):
    # a process connected to one Ray instance cannot silently use it for a different --address
    from medqk.distributed._engine import connect

    here = ray.get_runtime_context().gcs_address
    assert connect(here) is ray and connect("auto") is ray and connect(None) is ray
    with pytest.raises(ValueError, match="address='10.0.0.1:6379'.*already connected"):
        connect("10.0.0.1:6379")
    with pytest.raises(ValueError, match="already connected"):
        ShardedIndex("int8", 8, shards=2, engine="ray", address="ray://10.0.0.1:10001")


def test_damaged_shard_file_on_ray(local_ray, tmp_path):
    """An actor refusing its shard's damaged file: IndexFileError naming the shard; the folder untouched."""
    x, _ = data()
    one, many = build("int8", "ip", x, shards=2)
    many.save(tmp_path / "idx")
    many.close()
    name = next(n for n in os.listdir(tmp_path / "idx") if n.startswith("shard-0001") and n.endswith(".mqk"))
    blob = bytearray((tmp_path / "idx" / name).read_bytes())
    blob[100] ^= 1
    (tmp_path / "idx" / name).write_bytes(bytes(blob))
    files = {n: (tmp_path / "idx" / n).read_bytes() for n in os.listdir(tmp_path / "idx")}
    with pytest.raises(IndexFileError, match="shard 1: .*shard-0001-.*corrupt"):
        load(tmp_path / "idx", engine="ray", actor_options={"num_cpus": 0})
    assert {n: (tmp_path / "idx" / n).read_bytes() for n in os.listdir(tmp_path / "idx")} == files


TIMING = ("train_s", "add_s", "qps", "latency_ms", "peak_rss_mib", "measured_on")


def untimed(result) -> dict:
    out = result if isinstance(result, dict) else result.to_dict()
    out["meta"] = {k: v for k, v in out["meta"].items() if k != "date"}
    out["schemes"] = [{k: v for k, v in row.items() if k not in TIMING} for row in out["schemes"]]
    # the fastest scheme is picked by QPS, a timing (two local runs may differ there too)
    out["recommendation"] = {k: v for k, v in out["recommendation"].items() if k not in ("fastest", "statement")}
    return out


def test_eval_on_ray_equals_local(local_ray):
    """The scheme x fold grid as Ray tasks: the report equals the local run's but for the timing fields, and
    each row says where it was measured; a scheme failing in its task is skipped with the local reason."""
    from medqk.eval import Dataset, evaluate, load_sample

    sample = load_sample()
    data = Dataset("sample", np.ascontiguousarray(sample.docs[:800]), np.ascontiguousarray(sample.queries[:30]))
    schemes = ["int8", "cb4", "cb4+rerank:int8", "pq48x4fs", "pq7x4fs"]  # pq7x4fs: 7 does not divide 384
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        here = evaluate(data, schemes, k=10, cv=2, threads=1)
        there = evaluate(data, schemes, k=10, cv=2, threads=1, engine="ray")
    assert [s["spec"] for s in there.schemes] == ["int8", "cb4", "cb4+rerank:int8", "pq48x4fs"]
    assert there.skipped == here.skipped and there.skipped[0]["spec"] == "pq7x4fs"
    assert set(there.robustness["cv"]["schemes"]) == set(here.robustness["cv"]["schemes"])
    assert untimed(there) == untimed(here)
    assert all(row["measured_on"]["engine"] == "ray" and row["measured_on"]["pid"] != os.getpid()
               for row in there.schemes)
    assert all("measured_on" not in row for row in here.schemes)
    from medqk.eval import report

    assert "timed in Ray tasks on" in report.markdown(there)
    assert "Ray tasks" not in report.markdown(here)


def test_cli_eval_on_ray(local_ray, tmp_path, capsys):
    """medqk eval --engine ray on the bundled sample: the report equals the local run's but for the timing
    fields; its progress lines follow the scheme x fold grid as the Ray tasks finish (--quiet: none)."""
    import json

    from medqk import cli

    args = ["eval", "--schemes", "int8,cb4", "--max-queries", "40", "--cv", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(args + ["--quiet", "--out", str(tmp_path / "here")]) == 0
        assert capsys.readouterr().err == ""
        assert cli.main(args + ["--engine", "ray", "--out", str(tmp_path / "there")]) == 0
    err = capsys.readouterr().err
    for line in ("[1/2] int8: Ray task (", "[2/2] cb4: Ray task (", "cv int8: fold 1/2 (", "cv cb4: fold 2/2 ("):
        assert line in err
    done = [int(part.split("/")[0]) for part in err.split("(")[1:] if "Ray tasks done" in part]
    assert done == sorted(done) and len(done) == 6  # 2 scheme lines, 4 fold lines, each count >= the last
    here, there = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("here", "there"))
    assert all(row["measured_on"]["engine"] == "ray" for row in there["schemes"])
    assert untimed(there) == untimed(here)


def test_cli_eval_model_on_ray(local_ray, tmp_path, capsys):
    """medqk eval --model --engine ray: each model precision's texts embedded here, its scheme x fold grid as
    Ray tasks; the report equals the local run's but for the timing fields."""
    import json
    import random

    pytest.importorskip("safetensors", reason="the encoder reads model.safetensors (pip install 'medqk[encoder]')")
    pytest.importorskip("tokenizers", reason="the encoder tokenizes with tokenizers (pip install 'medqk[encoder]')")
    from medqk import cli
    from tests.encoder.test_encoder import WORDS, write_model

    folder, _ = write_model(tmp_path / "bert")
    words = [w for w in WORDS if not w.startswith("##")]
    rng = random.Random(5)
    docs = list(dict.fromkeys(" ".join(rng.sample(words, rng.randint(3, 8))) for _ in range(80)))[:40]
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n")
    (tmp_path / "queries.txt").write_text("\n".join(" ".join(rng.sample(words, 3)) for _ in range(10)) + "\n")
    args = ["eval", "--model", str(folder), "--precisions", "float32,int8", "--docs-text", str(tmp_path / "docs.txt"),
            "--queries-text", str(tmp_path / "queries.txt"), "--schemes", "int8,cb4", "--k", "5", "--cv", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(args + ["--quiet", "--out", str(tmp_path / "here")]) == 0
        assert cli.main(args + ["--engine", "ray", "--out", str(tmp_path / "there")]) == 0
    err = capsys.readouterr().err
    assert "model int8 [2/2]" in err and "[2/2] cb4: Ray task (" in err and "cv cb4: fold 2/2 (" in err
    here, there = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("here", "there"))
    assert [row["spec"] for row in there["schemes"]] == ["float32/int8", "float32/cb4", "int8/int8", "int8/cb4"]
    assert all(row["measured_on"]["engine"] == "ray" for row in there["schemes"])
    for report in (here, there):  # the embedding speed is a timing too (measured here in both runs)
        for entry in [*report["schemes"], *report["models"].values()]:
            for key in ("sentences_per_s", "encode_s", "index_recommendation"):  # the last names the fastest by QPS
                entry.pop(key, None)
    assert untimed(there) == untimed(here)
