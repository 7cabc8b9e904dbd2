"""Progress of a ShardedIndex's long steps (medqk._progress): a bar over the vectors of add / upsert, counted
as each shard takes its part of each ADD_CHUNK step, over the shards of save / load, and the codec's own
training bars; shown with progress=True, silent with False and (stderr not a terminal) with None."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import medqk.distributed as dist
import medqk.index as mi
from medqk.distributed import ShardedIndex, load

D = 16
N = 600


class Bars:
    """The bars medqk.distributed makes: desc, total, whether shown, and every update's count."""

    def __init__(self, monkeypatch):
        self.made = []
        real = dist.progress_bar

        def progress_bar(progress, total, desc, unit="it", iterable=None):
            bar = real(progress, total, desc, unit, iterable)
            record = {"desc": desc, "total": total, "shown": not bar.disable, "steps": []}
            update = bar.update

            def counted(n=1):
                record["steps"].append(n)
                return update(n)

            bar.update = counted
            self.made.append(record)
            return bar

        monkeypatch.setattr(dist, "progress_bar", progress_bar)

    def take(self) -> list[dict]:
        made, self.made = self.made, []
        return made


def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((9, D)).astype(np.float32)


def test_bars_count_every_vector_and_shard(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(dist, "ADD_CHUNK", 100)
    bars = Bars(monkeypatch)
    x, q = data()
    many = ShardedIndex("int8", D, shards=3, progress=True).train(x)
    many.add(x)
    (bar,) = bars.take()
    # 6 steps of 100 vectors, each counted as each of the 3 shards took its part (id % 3: 33 or 34)
    assert (bar["desc"], bar["total"], bar["shown"]) == ("add to 3 shards", N, True)
    assert len(bar["steps"]) == 18 and sum(bar["steps"]) == N and set(bar["steps"]) == {33, 34}
    many.upsert(x[:150], np.arange(150))
    (bar,) = bars.take()
    assert (bar["desc"], bar["total"], sum(bar["steps"]), len(bar["steps"])) == ("upsert to 3 shards", 150, 150, 6)
    many.save(tmp_path / "s")
    (bar,) = bars.take()
    assert (bar["desc"], bar["total"], bar["steps"]) == ("save shards", 3, [1, 1, 1])
    back = load(tmp_path / "s", progress=True)
    (bar,) = bars.take()
    assert (bar["desc"], bar["total"], bar["steps"], bar["shown"]) == ("load shards", 3, [1, 1, 1], True)
    assert back.progress is True
    err = capsys.readouterr().err
    for desc in ("add to 3 shards", "upsert to 3 shards", "save shards", "load shards"):
        assert desc in err


@pytest.mark.parametrize("spec", ["int8", "cb4", "ivf8,pq4x4fs+rerank:int8"])
def test_added_in_steps_equals_one_index(spec, monkeypatch):
    """Shards fed ADD_CHUNK vectors at a time (128: not a multiple of the shard count) hold what one index
    built by one add() holds: its searches are equal, bit for bit."""
    monkeypatch.setattr(dist, "ADD_CHUNK", 128)
    x, q = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small training sample: SpecDataWarning
        one = mi.create(spec, D).train(x).add(x)
        many = ShardedIndex(spec, D, shards=3, progress=False).train(x).add(x)
    for k in (1, 10):
        a, b = one.search(q, k), many.search(q, k)
        np.testing.assert_array_equal(b[1], a[1])
        np.testing.assert_array_equal(b[0], a[0])
    np.testing.assert_array_equal(many.ids(), one.ids())


@pytest.mark.parametrize("progress", [False, None])
def test_silent_when_off(progress, monkeypatch, capsys, tmp_path):
    """False, and None while stderr is not a terminal (as under pytest): no bar is drawn, nothing written."""
    monkeypatch.setattr(dist, "ADD_CHUNK", 100)
    bars = Bars(monkeypatch)
    x, _ = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        many = ShardedIndex("pq4x4fs", D, shards=3, progress=progress).train(x).add(x)
    many.save(tmp_path / "s")
    load(tmp_path / "s", progress=progress)
    made = bars.take()
    assert [b["desc"] for b in made] == ["add to 3 shards", "save shards", "load shards"]
    assert not any(b["shown"] for b in made)
    assert capsys.readouterr().err == ""


def test_training_bars_follow_the_index(capsys):
    """The codec trains on the driver with its own bars (k-means here), shown as the index's progress says;
    a spec whose codec has none takes progress too."""
    x, _ = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ShardedIndex("pq4x4fs", D, shards=2, progress=True).train(x)
        assert "k-means" in capsys.readouterr().err
        ShardedIndex("pq4x4fs", D, shards=2, progress=False).train(x)
        ShardedIndex("int8", D, shards=2, progress=True).train(x)
    assert capsys.readouterr().err == ""
