"""Compiled models survive the process: a second process loads, never compiles, same numbers.

Real parts throughout: nutpie compiles real PyMC models, the entries are real files, the
two-process test runs the real readout on a simulated store in two fresh Python processes.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
from conftest import ROOT

from attribution import cellmodel, compiledcache, store, synth


def _tiny_model() -> pm.Model:
    with pm.Model(coords={"g": ["a", "b", "c"]}) as model:
        y = pm.Data("y", np.array([0.5, 1.5, -0.2]), dims="g")
        mu = pm.Normal("mu", 0.0, 1.0, dims="g")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("obs", mu, sigma, observed=y, dims="g")
        pm.Deterministic("twice", 2 * mu, dims="g")
    return model


KEY = ("tiny", 3)


def _get(tmp: Path) -> tuple[cellmodel.Compiled, str]:
    """A new process's view: an empty in-process cache over the disk cache in ``tmp``."""
    entry, _, source = cellmodel.ModelCache().get(KEY, _tiny_model, want_nutpie=True)
    return entry, source


def _draws(entry: cellmodel.Compiled, y) -> np.ndarray:
    idata = cellmodel.sample(
        entry.model,
        entry.compiled,
        {"y": y},
        draws=100,
        tune=100,
        chains=2,
        seed=3,
        target_accept=0.9,
    )
    return idata.posterior["twice"].to_numpy()


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CX_MODEL_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> bytes:
    """One entry compiled for the tiny model (the bytes of its file)."""
    folder = tmp_path_factory.mktemp("models")
    model = _tiny_model()
    import nutpie

    compiled = nutpie.compile_pymc_model(model)
    path = compiledcache.save(compiled, compiledcache.fingerprint(model, KEY), folder)
    assert path is not None and path.exists()
    return path.read_bytes()


def _entry_path(folder: Path) -> Path:
    return folder / f"{compiledcache.fingerprint(_tiny_model(), KEY)[:40]}.nutpie"


def test_a_loaded_model_samples_exactly_as_the_compiled_one(folder, stored):
    path = _entry_path(folder)
    folder.mkdir()
    path.write_bytes(stored)
    loaded, source = _get(folder)
    assert source == "disk"
    y = np.array([2.0, -1.0, 0.3])
    import nutpie

    fresh = cellmodel.Compiled(loaded.model, nutpie.compile_pymc_model(loaded.model))
    np.testing.assert_array_equal(_draws(loaded, y), _draws(fresh, y))
    # the new data reached the loaded model: the posterior of 2 mu follows y's signs
    assert np.sign(_draws(loaded, y).mean(axis=(0, 1))).tolist() == [1.0, -1.0, 1.0]


def test_a_miss_compiles_and_stores_and_the_next_process_loads(folder):
    entry, source = _get(folder)
    assert source == "compiled" and entry.compiled is not None
    assert [p.name for p in folder.glob("*.nutpie")] == [_entry_path(folder).name]
    _, again = _get(folder)
    assert again == "disk"


TWO_AT_ONCE = """
import sys, time
sys.path.insert(0, "tests")
from test_compiledcache import KEY, _tiny_model
from attribution import cellmodel
_, _, source = cellmodel.ModelCache().get(KEY, _tiny_model, want_nutpie=True)
print(source)
"""


def test_two_processes_needing_one_model_at_once_compile_it_once(folder):
    env = {**os.environ, "CX_MODEL_CACHE": str(folder)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_AT_ONCE],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    sources = sorted(proc.communicate(timeout=600)[0].split()[-1] for proc in procs)
    assert [proc.returncode for proc in procs] == [0, 0]
    # the second waited for the first's entry instead of compiling the same model beside it
    assert sources == ["compiled", "disk"]
    assert len(list(folder.glob("*.nutpie"))) == 1


def _tamper(path: Path, change) -> None:
    entry = pickle.loads(path.read_bytes())
    change(entry)
    path.write_bytes(pickle.dumps(entry))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:5000]), "unusable"),
        (
            lambda p: _tamper(p, lambda e: e["versions"].update(numba="0.1.0")),
            "other package versions: numba 0.1.0 -> ",
        ),
        (
            lambda p: _tamper(p, lambda e: e.update(payload=e["payload"][:-9] + b"x" * 9)),
            "do not match their checksum",
        ),
        (lambda p: _tamper(p, lambda e: e.update(fingerprint="0" * 64)), "another model"),
    ],
    ids=["truncated", "other-versions", "altered", "other-structure"],
)
def test_an_unusable_entry_is_refused_with_one_log_line_never_used(
    folder, stored, caplog, damage, reason
):
    path = _entry_path(folder)
    folder.mkdir()
    path.write_bytes(stored)
    damage(path)
    with caplog.at_level(logging.WARNING, logger="attribution.compiledcache"):
        model = _tiny_model()
        compiled, status = compiledcache.load(model, compiledcache.fingerprint(model, KEY), folder)
    assert compiled is None and status.startswith("rebuilt: ")
    lines = [r.getMessage() for r in caplog.records if r.name == "attribution.compiledcache"]
    assert len(lines) == 1 and reason in lines[0] and "compiling again" in lines[0]


def test_an_unusable_entry_is_rebuilt_and_replaced_for_the_next_process(folder, stored, caplog):
    # one damage suffices here: every kind is refused by the same load (above)
    path = _entry_path(folder)
    folder.mkdir()
    path.write_bytes(stored[:5000])
    with caplog.at_level(logging.WARNING, logger="attribution.compiledcache"):
        _, source = _get(folder)
    assert source == "compiled"
    lines = [r.getMessage() for r in caplog.records if r.name == "attribution.compiledcache"]
    assert len(lines) == 1 and "unusable" in lines[0] and "compiling again" in lines[0]
    caplog.clear()
    _, again = _get(folder)
    assert again == "disk" and not caplog.records


def test_concurrent_writers_leave_one_whole_entry(folder):
    import nutpie

    model = _tiny_model()
    fp = compiledcache.fingerprint(model, KEY)
    compiled = nutpie.compile_pymc_model(model)
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda _: compiledcache.save(compiled, fp, folder), range(16)))
    assert len(set(paths)) == 1
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]
    loaded, status = compiledcache.load(model, fp, folder)
    assert status == "hit" and loaded.n_dim == compiled.n_dim


def test_the_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("CX_MODEL_CACHE", "off")
    assert compiledcache.directory() is None
    monkeypatch.setenv("CX_MODEL_CACHE", str(tmp_path / "x"))
    assert compiledcache.directory() == tmp_path / "x"
    monkeypatch.delenv("CX_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiledcache.directory() == tmp_path / "xdg" / "cx-attribution" / "models"


READOUT = """
import json, sys, time
t0 = time.perf_counter()
from attribution import store
from attribution.config import Config, ModelSettings
from attribution.readout import read_out
from attribution.uplift import _CACHE
cfg = Config(model=ModelSettings(seed=5))
with store.opened(sys.argv[1], read_only=True) as con:
    r = read_out(con, "exp_recovery_gift", config=cfg)
print(json.dumps({
    "cache": sorted({m.cache_ for m in r.models.values()}),
    "helpers": _CACHE.helper_compilations,
    "compile_s": sum(m.timings_["compile_s"] for m in r.models.values()),
    "wall_s": time.perf_counter() - t0,
    "table": r.table.to_json(orient="split", double_precision=15),
}))
"""


def test_a_readout_in_a_second_process_compiles_nothing_and_gives_the_same_numbers(tmp_path):
    path = tmp_path / "world.duckdb"
    with store.opened(path) as con:
        synth.simulate(con, 4_000, months=8, seed=21)
    # The run's cache: the first process loads the two models or compiles what is missing (side
    # by side in helper processes; how a miss compiles is tested on a small model below).
    env = {**os.environ, "CX_PARALLEL_COMPILE": "1"}

    def run() -> dict:
        done = subprocess.run(
            [sys.executable, "-c", READOUT, str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    # revenue and cost-to-serve share one spend model: the second fit of it is "memory"
    # (in the run's shared cache another worker may have stored one of the two models already)
    assert "memory" in first["cache"] and set(first["cache"]) <= {"compiled", "disk", "memory"}
    assert second["cache"] == ["disk", "memory"] and second["helpers"] == 0
    assert second["table"] == first["table"]
    assert second["compile_s"] < 5.0


def _tiny_sized(n: int) -> pm.Model:
    """A model whose structure depends on ``n`` (built in helper processes: module level)."""
    with pm.Model(coords={"g": list(range(n))}) as model:
        mu = pm.Normal("mu", 0.0, 1.0, dims="g")
        pm.Normal("obs", mu, 1.0, observed=np.arange(n, dtype=float), dims="g")
    return model


def test_missing_models_compile_side_by_side_in_helpers_and_load_from_disk(folder, monkeypatch):
    monkeypatch.setenv("CX_PARALLEL_COMPILE", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))  # the helpers unpickle _tiny_sized
    cache = cellmodel.ModelCache()
    jobs = [(("sized", n), _tiny_sized, (n,)) for n in (2, 3)]
    assert cache.prefetch(jobs) == 2 and cache.helper_compilations == 2
    assert len(list(folder.glob("*.nutpie"))) == 2
    for key, build, args in jobs:
        entry, seconds, source = cache.get(key, lambda b=build, a=args: b(*a), want_nutpie=True)
        # compiled by a helper just now: its compile time is this fit's
        assert source == "compiled" and seconds > 0.5 and entry.compiled is not None
    assert cache.prefetch(jobs) == 0  # nothing missing any more
    fresh = cellmodel.ModelCache()  # a new process's view
    assert fresh.prefetch(jobs) == 0
    assert fresh.get(("sized", 2), lambda: _tiny_sized(2), want_nutpie=True)[2] == "disk"


def test_deterministics_are_computed_after_sampling_as_pymc_computes_them_per_draw():
    """nutpie keeps the free variables only (a smaller compile); the deterministics are then
    computed for all draws at once on the fit's data: n-ary products, integer data used only by
    a deterministic, a reduction and a new dimension, equal to PyMC's per-draw values."""
    import pytensor.tensor as pt

    with pm.Model(coords={"g": ["a", "b", "c"], "k": ["x", "y"]}) as model:
        y = pm.Data("y", np.array([0.5, 1.5, -0.2]), dims="g")
        w = pm.Data("w", np.array([1, 2, 3]), dims="g")
        mu = pm.Normal("mu", 0.0, 1.0, dims="g")
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("obs", mu, sigma, observed=y, dims="g")
        pm.Deterministic("product", 0.5 * mu * sigma * w, dims="g")
        pm.Deterministic("weighted", (w * pm.math.sigmoid(mu)).sum() / w.sum())
        pm.Deterministic("grid", mu[:, None] + pt.arange(2)[None, :], dims=("g", "k"))
    import nutpie

    compiled = nutpie.compile_pymc_model(model, var_names=cellmodel.stored(model))
    data = {"y": np.array([2.0, -1.0, 0.3]), "w": np.array([4, 0, 1])}
    kept = nutpie.sample(compiled.with_data(y=data["y"]), draws=50, tune=50, chains=2, seed=3,
                         progress_bar=False)  # fmt: skip
    assert {"mu", "sigma"} <= set(kept.posterior.data_vars)
    assert not {"product", "weighted", "grid"} & set(kept.posterior.data_vars)
    idata = cellmodel.sample(
        model, compiled, data, draws=50, tune=50, chains=2, seed=3, target_accept=0.9
    )
    post = idata.posterior
    assert post["grid"].dims == ("chain", "draw", "g", "k") and list(post["k"].values) == ["x", "y"]
    with model:
        pm.set_data(data)
        expected = pm.compute_deterministics(
            post[["mu", "sigma"]], merge_dataset=False, progressbar=False
        )
    for name in ("product", "weighted", "grid"):
        np.testing.assert_allclose(post[name].values, expected[name].values, rtol=1e-12)
    # the fit's data, not the model's first: w = 0 for b leaves it out of the weighted mean
    sig = 1 / (1 + np.exp(-post["mu"].values))
    np.testing.assert_allclose(
        post["weighted"].values, (4 * sig[..., 0] + sig[..., 2]) / 5, rtol=1e-12
    )
