"""medqk.distributed.ShardedIndex on the local engine: every search equals one index built by the same calls,
ids and scores bit for bit (float32 to its BLAS rounding), through ids, removals, upserts, compaction,
filters, save and load; and the bad input of issue 27."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import medqk
import medqk.index as mi
from medqk.distributed import ShardedIndex, ShardUnavailableError, _manifest_checksum, load
from medqk.distributed._engine import LocalEngine
from medqk.index import IndexFileError
from tests.float_bounds import gamma

D = 32
N = 600


def data(seed=0, n=N, d=D):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[7] = x[3]  # equal vectors: equal scores, the tie rule decides
    x[400] = x[3]
    x[401] = x[10]
    q = rng.standard_normal((23, d)).astype(np.float32)
    q[0] = x[3]
    return x, q


def pair(spec, metric="ip", shards=3, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small training samples: SpecDataWarning
        x, _ = data()
        one = mi.create(spec, D, metric, **options).train(x[:400])
        many = ShardedIndex(spec, D, metric, shards=shards, **options).train(x[:400])
    return one, many


def assert_same(one, many, q, k, **kw):
    a = one.search(q, k, **kw)
    b = many.search(q, k, **kw)
    assert a[1].dtype == b[1].dtype == np.int64 and a[0].dtype == b[0].dtype == np.float32
    np.testing.assert_array_equal(b[1], a[1])
    np.testing.assert_array_equal(b[0], a[0])
    return a


# One spec of each way one index searches: one stage (fp16, pq8, IVF), int8 and 4-bit codes re-scored by
# the float query, +rerank over each kind of base
EXACT_SPECS = ["fp16", "int8", "int4", "cb4", "pca4", "pq8x4fs", "opq,pq8x4fs", "pq16x8", "ivf8,pq8x4fs",
               "int8+rerank:fp16", "pq8x4fs+rerank:int8", "pq16x8+rerank:int8", "ivf8,pq8x4fs+rerank:int8",
               "cb4+rerank:int8", "fp16+rerank:int8"]


@pytest.mark.parametrize("metric", ["ip", "l2", "cos"])
@pytest.mark.parametrize("spec", EXACT_SPECS)
def test_equals_one_index(spec, metric):
    one, many = pair(spec, metric)
    x, q = data()
    for part in (x[:250], x[250:]):  # two adds: the second continues the ids
        one.add(part)
        many.add(part)
    assert len(many) == len(one) == N and many.next_id == one.next_id
    assert sorted(many.shard_sizes()) == [200, 200, 200]
    if spec == "fp16" and medqk.info()["backend"] != "native":  # no fused fp16 kernel: BLAS, as float32
        assert_within_rounding(one, many, x, q, 10, metric)
        return
    for k in (1, 10, 37):
        assert_same(one, many, q, k)
    assert_same(one, many, q[0], 5)  # a single (dim,) query


def test_equals_one_index_backends(backend):
    """The same under every native ISA and Numba (the kernels of each shard are the backend's)."""
    x, q = data()
    for spec in ("int8", "pq8x4fs+rerank:int8", "ivf8,pq8x4fs", "cb4"):
        one, many = pair(spec, "l2")
        one.add(x)
        many.add(x)
        assert_same(one, many, q, 10)


@pytest.mark.parametrize("spec", ["int4", "cb4+rerank:int8", "fp16"])
def test_large_batches(spec):
    """300 queries: the 4-bit codecs' candidates come from the int8 GEMM over decoded blocks (each shard takes
    the GEMM path because one index would), fp16 leaves its fused kernel for BLAS past 256 queries (see the
    float32 test: then only within rounding)."""
    one, many = pair(spec)
    x, _ = data()
    one.add(x)
    many.add(x)
    q = np.random.default_rng(5).standard_normal((300, D)).astype(np.float32)
    if spec == "fp16":
        a, b = one.search(q, 10), many.search(q, 10)
        assert (a[1] == b[1]).mean() > 0.99
        return
    assert_same(one, many, q, 10)


@pytest.mark.parametrize("spec", ["int4", "cb4+rerank:int8"])
def test_shards_smaller_than_the_candidate_list(spec, monkeypatch):
    """8 shards of 75 vectors, k = 60: one index keeps 120 candidates (cb4+rerank: 240), more than the GEMM
    path takes, so it scans the 4-bit tables; each shard is asked for as many (with its 75 rows it would
    otherwise take the GEMM path and rank its candidates by other scores)."""
    one, many = pair(spec, shards=8)
    x, _ = data()
    one.add(x)
    many.add(x)
    asked = []
    real = many._engine.call
    monkeypatch.setattr(many._engine, "call",
                        lambda h, method, args, done=None: asked.extend(a[1] for a in args.values()
                                                                        if method == "first_stage")
                        or real(h, method, args, done))
    q = np.random.default_rng(6).standard_normal((300, D)).astype(np.float32)
    assert_same(one, many, q, 60)
    assert asked == [120 if spec == "int4" else 240] * 8


def assert_within_rounding(one, many, x, q, k, metric):
    """For the indexes one scores with BLAS (its rounding of a row depends on the block it falls in): the merged
    scores equal one index's within two float32 dot-product bounds, the ids wherever no two scores are that
    close."""
    (sa, ia), (sb, ib) = one.search(q, k), many.search(q, k)
    terms = np.abs(q) @ np.abs(x).T if metric != "l2" else (np.abs(q)[:, None, :] + np.abs(x)[None]) ** 2 @ np.ones(D)
    bound = 2 * gamma(D + 2) * terms.max()
    np.testing.assert_allclose(sb, sa, rtol=0, atol=bound)
    gaps = np.abs(np.diff(sa, axis=1)) > 2 * bound
    clear = np.concatenate([gaps, np.ones((len(q), 1), bool)], axis=1)
    clear[:, 1:] &= gaps
    np.testing.assert_array_equal(ib[clear], ia[clear])


@pytest.mark.parametrize("spec", ["rabitq", "rabitq+rerank:int8"])
def test_rabitq_within_rounding(spec):
    """rabitq stores factors of a BLAS rotation of each add() batch, which rounds a vector's factors by the
    rows beside it (the module doc): the merged scores equal one index's within the rounding of a D-term
    float32 product of the largest score, the ids wherever no two scores are that close (with +rerank, the
    candidates are chosen by those scores: a near-tie at the candidate list's end may differ too)."""
    one, many = pair(spec, "ip")
    x, q = data()
    one.add(x)
    many.add(x)
    (sa, ia), (sb, ib) = one.search(q, 10), many.search(q, 10)
    bound = 2 * gamma(D + 2) * np.abs(sa).max()
    np.testing.assert_allclose(sb, sa, rtol=0, atol=bound)
    gaps = np.abs(np.diff(sa, axis=1)) > 2 * bound
    clear = np.concatenate([gaps, np.ones((len(q), 1), bool)], axis=1)
    clear[:, 1:] &= gaps
    np.testing.assert_array_equal(ib[clear], ia[clear])


def test_float32_within_rounding():
    for metric in ("ip", "l2"):
        one, many = pair("float32", metric)
        x, q = data()
        one.add(x)
        many.add(x)
        assert_within_rounding(one, many, x, q, 10, metric)


@pytest.mark.parametrize("spec", ["int8", "pq8x4fs", "ivf8,pq8x4fs+rerank:int8", "fp16+rerank:int8"])
def test_ids_remove_upsert_filters(spec):
    """Own ids, removals (past the auto-compaction fraction), upserts and every kind of filter, each search
    equal to one index given the same calls."""
    one, many = pair(spec, "l2" if spec == "int8" else "ip")
    x, q = data()
    ids = np.random.default_rng(1).permutation(5 * N)[:N].astype(np.int64)
    for index in (one, many):
        index.add(x[:300], ids=ids[:300])
        index.add(x[300:])  # without ids: continue after the largest
    np.testing.assert_array_equal(many.ids(), one.ids())
    assert_same(one, many, q, 10)
    gone = one.ids()[::5]
    assert many.remove(np.concatenate([gone, [10**9]])) == one.remove(np.concatenate([gone, [10**9]])) == len(gone)
    assert len(many) == len(one)
    assert_same(one, many, q, 10)
    new = np.random.default_rng(2).standard_normal((40, D)).astype(np.float32)
    upserted = np.concatenate([one.ids()[1:20:3], [10**6 + 1, 10**6 + 2]])
    for index in (one, many):
        index.upsert(new[: len(upserted)], upserted)
    assert_same(one, many, q, 10)
    more = one.ids()[1::2][:140]
    assert many.remove(more) == one.remove(more)  # past 25% removed: one index compacts, so do the shards
    assert sum(r for r, _ in many._stats) == one._ntotal
    assert_same(one, many, q, 10)
    np.testing.assert_array_equal(many.ids(), one.ids())
    np.testing.assert_array_equal(many.vectors(), one.vectors())
    live = one.ids()
    np.testing.assert_array_equal(many.vectors(live[[5, 3, 5]]), one.vectors(live[[5, 3, 5]]))
    rng = np.random.default_rng(3)
    half = rng.choice(live, len(live) // 2, replace=False)
    mask = np.zeros(one.next_id, dtype=bool)
    mask[rng.choice(live, 200, replace=False)] = True
    few = live[:4]  # below every exact_scan_fraction: the exact scan of the allowed rows
    for flt in (half, mask, lambda i: i % 3 == 0, few, np.array([], dtype=np.int64), np.concatenate([few, [7 * N]])):
        assert_same(one, many, q, 10, filter=flt)


def test_ivf_nprobe_and_lists():
    one, many = pair("ivf8,pq8x4fs", nprobe=2)
    x, q = data()
    one.add(x)
    many.add(x)
    assert many.nprobe == 2
    for nprobe in (1, 2, 8):
        assert_same(one, many, q, 20, nprobe=nprobe)  # few lists probed: -1 padding past their vectors
    one.nprobe = many.nprobe = 3
    assert_same(one, many, q, 10)
    with pytest.raises(ValueError, match="nprobe"):
        many.search(q, 10, nprobe=9)


def test_save_load(tmp_path):
    one, many = pair("ivf8,pq8x4fs+rerank:int8")
    x, q = data()
    ids = np.arange(N, dtype=np.int64) * 7
    for index in (one, many):
        index.add(x, ids=ids)
        index.remove(ids[:50])
    folder = tmp_path / "sharded"
    many.save(folder)
    first = sorted(os.listdir(folder))
    back = load(folder)
    assert back.shards == 3 and len(back) == len(one) and back.next_id == one.next_id
    assert_same(one, back, q, 10)
    one.add(x[:5])
    back.add(x[:5])  # continues the ids and the insertion numbers where the save left them
    assert_same(one, back, q, 10)
    back.save(folder)  # a new save replaces the files of the previous one
    second = sorted(os.listdir(folder))
    assert len(second) == len(first) and not set(first) & set(second) - {"manifest.json"}
    assert_same(one, load(folder), q, 10)


def test_damaged_or_mismatched_files(tmp_path):
    _, many = pair("int8")
    x, _ = data()
    many.add(x)
    many.save(tmp_path / "a")
    _, other = pair("int8")
    other.add(x[::-1].copy())
    other.save(tmp_path / "b")
    names = sorted(os.listdir(tmp_path / "a"))
    index_file = next(n for n in names if n.startswith("shard-0001") and n.endswith(".mqk"))
    other_file = next(n for n in os.listdir(tmp_path / "b") if n.startswith("shard-0001") and n.endswith(".mqk"))
    saved = (tmp_path / "a" / index_file).read_bytes()
    # a shard's index file from another sharded index: refused by checksum, before any shard runs
    (tmp_path / "a" / index_file).write_bytes((tmp_path / "b" / other_file).read_bytes())
    with pytest.raises(IndexFileError, match="shard 1"):
        load(tmp_path / "a")
    # a damaged byte
    damaged = bytearray(saved)
    damaged[200] ^= 1
    (tmp_path / "a" / index_file).write_bytes(bytes(damaged))
    with pytest.raises(IndexFileError):
        load(tmp_path / "a")
    (tmp_path / "a" / index_file).write_bytes(saved)
    assert len(load(tmp_path / "a")) == N  # nothing lost
    manifest = (tmp_path / "a" / "manifest.json").read_text()
    (tmp_path / "a" / "manifest.json").write_text(manifest.replace('"next_id"', '"next_id_"')[:-20])
    with pytest.raises(IndexFileError, match="manifest"):
        load(tmp_path / "a")
    with pytest.raises(IndexFileError, match="manifest.json missing"):
        load(tmp_path)


def folder_bytes(folder) -> dict:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_mismatched_codecs(tmp_path):
    """Shard files of an index with another codec, a codec file of another index, a manifest naming another
    spec: each refused naming the shard or file, before any search; loading never writes, nothing is lost."""
    x, _ = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ShardedIndex("int8", D, shards=3).train(x[:400]).add(x)
        b = ShardedIndex("int8", D, shards=3).train(x[200:]).add(x)  # other training data: another codec
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    fa, fb = tmp_path / "a", tmp_path / "b"
    original = folder_bytes(fa)
    manifest_a = json.loads((fa / "manifest.json").read_text())
    manifest_b = json.loads((fb / "manifest.json").read_text())
    assert manifest_a["codec_id"] != manifest_b["codec_id"]
    shard_a, shard_b = manifest_a["shard_files"][1], manifest_b["shard_files"][1]

    def refused(match):
        before = folder_bytes(fa)
        with pytest.raises(IndexFileError, match=match):
            load(fa)
        assert folder_bytes(fa) == before  # load wrote nothing

    # b's shard 1 under a's names: not the seq file a's manifest names
    for kind in ("index", "seq"):
        (fa / shard_a[kind]).write_bytes((fb / shard_b[kind]).read_bytes())
    refused(rf"shard 1: .*{shard_a['seq']}.* is not the file the manifest names")
    # a's manifest naming b's shard 1 files, checksums and all: their seq file names another codec
    for kind in ("index", "seq"):
        (fa / shard_a[kind]).write_bytes(original[shard_a[kind]])
        (fa / shard_b[kind]).write_bytes((fb / shard_b[kind]).read_bytes())
    edited = dict(manifest_a, shard_files=[*manifest_a["shard_files"][:1], shard_b, *manifest_a["shard_files"][2:]])
    edited["checksum"] = _manifest_checksum(edited)
    (fa / "manifest.json").write_text(json.dumps(edited))
    refused("shard 1: .* belongs to another sharded index or shard")
    for kind in ("index", "seq"):
        (fa / shard_b[kind]).unlink()
    (fa / "manifest.json").write_bytes(original["manifest.json"])
    # b's codec under a's codec file name
    (fa / manifest_a["codec_file"]).write_bytes((fb / manifest_b["codec_file"]).read_bytes())
    refused(rf"{manifest_a['codec_file']}.* is not the codec of this sharded index")
    (fa / manifest_a["codec_file"]).write_bytes(original[manifest_a["codec_file"]])
    # a manifest that says another spec than its codec and shards hold (its checksum made to match)
    other_spec = dict(manifest_a, spec="int4")
    other_spec["checksum"] = _manifest_checksum(other_spec)
    (fa / "manifest.json").write_text(json.dumps(other_spec))
    refused("holds 'int8' dim 32 ip; the manifest says 'int4'")
    (fa / "manifest.json").write_bytes(original["manifest.json"])
    assert folder_bytes(fa) == original and len(load(fa)) == N  # nothing lost


@pytest.mark.parametrize("damaged", ["index", "seq", "codec", "manifest"])
def test_each_damaged_file(damaged, tmp_path):
    """One flipped byte in any file of a save: IndexFileError naming the file (and the shard), the files as
    they were."""
    _, many = pair("pq8x4fs+rerank:int8")
    x, _ = data()
    many.add(x)
    folder = tmp_path / "s"
    many.save(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    name = {"index": manifest["shard_files"][2]["index"], "seq": manifest["shard_files"][2]["seq"],
            "codec": manifest["codec_file"], "manifest": "manifest.json"}[damaged]
    blob = bytearray((folder / name).read_bytes())
    blob[len(blob) // 2] ^= 0x20
    (folder / name).write_bytes(bytes(blob))
    before = folder_bytes(folder)
    with pytest.raises(IndexFileError, match=("shard 2: " if damaged in ("index", "seq") else "") + f".*{name}"):
        load(folder)
    assert folder_bytes(folder) == before
    if damaged == "manifest":  # a change that still parses: refused by the manifest's own checksum
        (folder / name).write_text(json.dumps(dict(manifest, next_id=manifest["next_id"] + 100)))
        with pytest.raises(IndexFileError, match="manifest.json' is damaged"):
            load(folder)
        version1 = {key: value for key, value in manifest.items() if key != "checksum"}
        (folder / name).write_text(json.dumps(dict(version1, version=1)))  # written before manifests had one
        assert len(load(folder)) == N


def test_failed_save_keeps_the_last_one(tmp_path, monkeypatch):
    """A save that fails part-way (a shard's disk full) leaves the folder holding the previous save, byte for
    byte, and no file of its own; a failed first save leaves an empty folder."""
    one, many = pair("int8")
    x, q = data()
    many.add(x[:300])
    folder = tmp_path / "s"
    many.save(folder)
    saved = folder_bytes(folder)
    many.add(x[300:])

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(many.actors[2], "save", disk_full)  # shards 0 and 1 have written theirs by then
    with pytest.raises(OSError, match="No space left"):
        many.save(folder)
    assert folder_bytes(folder) == saved
    back = load(folder)
    one.add(x[:300])
    assert_same(one, back, q, 10)
    with pytest.raises(OSError, match="No space left"):
        many.save(tmp_path / "first")
    assert os.listdir(tmp_path / "first") == []


def test_bad_input():
    with pytest.raises(ValueError, match="cannot be sharded exactly"):
        ShardedIndex("hnsw", D, shards=2)
    with pytest.raises(ValueError, match="cannot be sharded exactly"):
        ShardedIndex("hnsw+rerank:int8", D, shards=2)
    with pytest.raises(ValueError, match="shards must be"):
        ShardedIndex("int8", D, shards=0)
    with pytest.raises(ValueError, match="engine must be"):
        ShardedIndex("int8", D, shards=2, engine="spark")
    with pytest.raises(ValueError, match="unknown index spec"):
        ShardedIndex("int9", D, shards=2)
    x, q = data()
    many = ShardedIndex("int8", D, shards=4)
    with pytest.raises(RuntimeError, match="trained"):
        many.add(x)
    many.train(x)
    with pytest.raises(ValueError, match="larger than the data"):
        many.add(x[:3])
    many.add(x[:100])
    with pytest.raises(ValueError, match="already in the index"):
        many.add(x[:2], ids=[500, 5])  # 5 is there (shard 1): nothing added to shard 0 either
    assert len(many) == 100
    with pytest.raises(ValueError, match="duplicates"):
        many.add(x[:2], ids=[500, 500])
    with pytest.raises(ValueError, match="k=101"):
        many.search(q, 101)
    with pytest.raises(ValueError, match="dimension"):
        many.search(q[:, :5], 3)
    with pytest.raises(ValueError, match="filter: a boolean mask"):
        many.search(q, 3, filter=np.ones(5, dtype=bool))
    with pytest.raises(TypeError, match="filter must be"):
        many.search(q, 3, filter=np.ones(5, dtype=np.float32))


def test_nan_query_refused_before_fan_out(monkeypatch):
    _, many = pair("int8")
    x, q = data()
    many.add(x)
    calls = []
    real = many._engine.call
    monkeypatch.setattr(many._engine, "call", lambda *a: calls.append(a[1]) or real(*a))
    q[3, 4] = np.nan
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        many.search(q, 5)
    q[3, 4] = np.inf
    with pytest.raises(ValueError, match="q contains NaN or Inf"):
        many.search(q, 5, filter=np.arange(10))
    assert calls == []


def test_dead_shard_raises_naming_it(monkeypatch, tmp_path):
    """A shard that does not answer fails the whole search with its number; retry=True restarts it from the
    last save when nothing changed since."""
    one, many = pair("pq8x4fs+rerank:int8")
    x, q = data()
    one.add(x)
    many.add(x)
    real = many._engine.call

    def call(handles, method, args, done=None):
        if method == "second_stage" and 2 in args and not getattr(handles[2], "restarted", False):
            raise ShardUnavailableError(2, "shard 2 is not available")
        return real(handles, method, args, done)

    monkeypatch.setattr(many._engine, "call", call)
    with pytest.raises(ShardUnavailableError, match="shard 2") as err:
        many.search(q, 10)
    assert err.value.shard == 2
    with pytest.raises(ShardUnavailableError):
        many.search(q, 10, retry=True)  # never saved: nothing to restart from
    many.save(tmp_path / "s")
    start = many._engine.start

    def restarted(specs):
        shards = start(specs)
        for s in shards:
            s.restarted = True
        return shards

    monkeypatch.setattr(many._engine, "start", restarted)
    a, b = one.search(q, 10), many.search(q, 10, retry=True)
    np.testing.assert_array_equal(b[1], a[1])
    np.testing.assert_array_equal(b[0], a[0])
    assert many.actors[2].restarted


def _handed_over(obj):
    """obj as a Ray actor receives it: pickled (protocol 5), its arrays rebuilt over read-only buffers, with
    dtypes equal to numpy's but not numpy's own objects."""
    buffers = []
    blob = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(blob, buffers=[memoryview(bytes(b.raw())) for b in buffers])


class HandedOverEngine(LocalEngine):
    """The local engine with Ray's handoff of every argument and answer (no Ray needed)."""

    def call(self, handles, method, args, done=None):
        args = _handed_over(args)
        arrays = [a for part in args.values() for a in part if isinstance(a, np.ndarray) and a.nbytes]
        assert all(not a.flags.writeable and a.dtype is not np.dtype(a.dtype.str) for a in arrays)
        return _handed_over(super().call(handles, method, args, done))


@pytest.mark.parametrize("spec", EXACT_SPECS)
def test_shards_take_arrays_as_ray_hands_them_over(spec):
    """The shards use the arrays they are given as they come (read-only, unpickled dtypes) in every method:
    the native bindings take them (tests/kernels/test_pickled_arrays.py), nothing writes into them."""
    metric = ("ip", "l2", "cos")[EXACT_SPECS.index(spec) % 3]
    one = pair(spec, metric)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, q = data()
        many = ShardedIndex(spec, D, metric, shards=3)
        many._engine = HandedOverEngine()
        many.train(x[:400])
    for index in (one, many):
        index.add(x[:300], ids=np.arange(300) * 2)
        index.add(x[300:])
        index.upsert(x[:20] * 0.5, np.arange(20) * 2)
        index.remove(np.arange(40, 120))
    if spec == "fp16" and medqk.info()["backend"] != "native":
        return  # scored with BLAS there, as float32 (test_equals_one_index); the handoff ran above
    assert_same(one, many, q, 10)
    assert_same(one, many, q, 10, filter=np.arange(0, 900, 3))  # the filtered scan
    if spec != "fp16":  # whose exact scan is BLAS's (the module doc)
        assert_same(one, many, q, 10, filter=np.arange(300, 330))  # the exact scan of a selective filter
    # opq's reconstruction rotates back with a BLAS product over the rows asked for: float32 rounding
    np.testing.assert_allclose(many.vectors([0, 2, 599]), one.vectors([0, 2, 599]), rtol=1e-5, atol=1e-6)


def test_importing_medqk_never_imports_ray():
    code = ("import sys, medqk, medqk.index, medqk.distributed; "
            "from medqk.distributed import ShardedIndex; ShardedIndex('int8', 8, shards=2); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_ray_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r"engine='ray' needs Ray: pip install 'medqk\[ray\]'"):
        ShardedIndex("int8", D, shards=2, engine="ray")


def test_cli_engine_flags(tmp_path, capsys):
    """medqk eval --engine / --address: --address needs --engine ray (with --model too)."""
    from medqk import cli

    assert cli.main(["eval", "--address", "127.0.0.1:6379", "--out", str(tmp_path / "r")]) != 0
    assert "--address is for --engine ray" in capsys.readouterr().err
    assert cli.main(["eval", "--model", "m", "--address", "127.0.0.1:6379", "--out", str(tmp_path / "r")]) != 0
    assert "--address is for --engine ray" in capsys.readouterr().err
    assert cli.main(["eval", "--engine", "spark"]) != 0


def test_unreachable_ray_address():
    pytest.importorskip("ray", reason="ray is not installed")
    import ray

    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process (the address would not be used)")
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        ShardedIndex("int8", D, shards=2, engine="ray", address="127.0.0.1:1")  # port 1: refused at once


def test_cli_unreachable_ray_address(tmp_path, capsys):
    """medqk eval --engine ray --address at no cluster: exit status 2-ish with the address named, before any
    work, and no report folder left behind."""
    pytest.importorskip("ray", reason="ray is not installed")
    import ray

    from medqk import cli

    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process (the address would not be used)")
    out = tmp_path / "r"
    assert cli.main(["eval", "--engine", "ray", "--address", "127.0.0.1:1", "--schemes", "int8", "--out",
                     str(out)]) != 0
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err
    assert not out.exists()


def test_no_shard_has_a_candidate():
    """IVF probing one list while the filter allows only another list's vectors: one index returns rows of
    -1 / -inf, and so does the sharded one (no shard has a candidate to re-rank)."""
    one, many = pair("ivf8,pq8x4fs+rerank:int8", nprobe=1)
    x, _ = data()
    one.add(x)
    many.add(x)
    ivf = one.base
    lists = np.repeat(np.arange(ivf.nlist), ivf.list_sizes())[np.argsort(ivf._list_ids)]  # list of each id
    big = np.argsort(-ivf.list_sizes())[:2]
    allowed = np.flatnonzero(lists == big[0])  # above the exact-scan fraction: the masked IVF scan
    q = x[lists == big[1]][:5]  # each probes its own list only
    a = assert_same(one, many, q, 3, filter=allowed)
    assert (a[1] == -1).all()
