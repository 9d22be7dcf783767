"""Method plug-ins (entry-point group ``signbench.methods``): discovery, the contract check, the
one-line errors, and the example plug-in of ``examples/plugin/`` installed with pip and run end
to end by ``signbench run`` onto a leaderboard.

The broken plug-ins are distributions written the way pip writes them (a ``*.dist-info`` folder
with ``METADATA`` and ``entry_points.txt``, next to their modules) in a folder put on
``sys.path``, so ``importlib.metadata`` finds them as it finds installed packages.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import baselines
from harness.cli import main
from harness.cli.common import resolve_methods
from harness.cli.info import collect_methods
from harness.method import PluginError, builder_class, forget_plugins, plugin_error, registered
from harness.results import load_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
EXAMPLE_KEY = "keypoint-gru"

GOOD = '''
from harness.method import SLTMethod, Stage


class Good(SLTMethod):
    key = "{name}"
    inputs = ("keypoints",)

    def stages(self):
        return [Stage("main", epochs=1)]

    def training_step(self, batch, state):
        raise NotImplementedError

    def generate(self, batch, beam_size=5, length_penalty=1.0, max_len=60):
        return []


def build_good(profile="tiny", **kw):
    return Good(profile)


build_good.method_class = Good
'''


def write_distribution(root: Path, dist: str, entry_points: dict[str, str],
                       modules: dict[str, str]) -> None:
    """A distribution ``dist`` 0.1 under ``root``: its modules and its dist-info folder."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n",
                                   encoding="utf-8")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[signbench.methods]\n{lines}", encoding="utf-8")


@pytest.fixture
def plugin_root(tmp_path, monkeypatch):
    """A folder on ``sys.path`` for test distributions; the plug-in discovery is redone before
    and after the test, and the test's modules are dropped from ``sys.modules``."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    forget_plugins()
    yield root
    for module in [p.stem for p in root.glob("*.py")]:
        sys.modules.pop(module, None)
    monkeypatch.undo()
    forget_plugins()


BROKEN = {
    "import": ({"fails-import": "fails_import_mod:Method"},
               {"fails_import_mod": "from harness.method import register\n"
                                    "register('fails-import')(object)\n"
                                    "raise RuntimeError('plug-in import exploded')\n"},
               r"failed to import: RuntimeError: plug-in import exploded"),
    "missing module": ({"no-module": "no_such_module_xyz:Method"}, {},
                       r"failed to import: ModuleNotFoundError: .*no_such_module_xyz"),
    "clash": ({"hypersign": "clash_mod:Good"}, {"clash_mod": GOOD.format(name="hypersign")},
              r"the name 'hypersign' clashes with the built-in method "
              r"baselines\.hypersign\.model\.HyperSign"),
    "no generate": ({"no-generate": "nogen_mod:NoGenerate"},
                    {"nogen_mod": GOOD.format(name="no-generate") + textwrap.dedent('''
                        class NoGenerate(SLTMethod):
                            key = "no-generate"
                            inputs = ("keypoints",)
                            def stages(self):
                                return []
                     ''')},
                    r"NoGenerate does not implement training_step, generate"),
    "unknown stream": ({"bad-stream": "stream_mod:Method"},
                       {"stream_mod": GOOD.format(name="bad-stream")
                        + "\nclass Method(Good):\n    inputs = ('keypoints', 'depth')\n"},
                       r"Method\.inputs has unknown stream\(s\) \['depth'\]; known streams"),
    "not a method": ({"not-method": "notm_mod:thing"}, {"notm_mod": "def thing():\n    pass\n"},
                     r"is not an SLTMethod subclass"),
    "key mismatch": ({"wrong-key": "key_mod:Good"}, {"key_mod": GOOD.format(name="other")},
                     r"Good\.key is 'other', not the entry-point name 'wrong-key'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_gets_one_clear_error_and_the_others_stay(plugin_root, case, capsys):
    entry_points, modules, problem = BROKEN[case]
    write_distribution(plugin_root, f"broken-{case.replace(' ', '-')}", entry_points, modules)
    (name,) = entry_points
    dist = f"broken-{case.replace(' ', '-')}"
    key = f"hypersign ({dist} 0.1)" if name == "hypersign" else name  # a taken name
    builtins = {"hfa", "hypersign", "signbind", "signfuse", "signx"}
    assert builtins <= set(baselines.list_methods())  # the other methods are still there
    assert name == "hypersign" or name not in baselines.list_methods()
    plugin = baselines.list_plugins()[key]
    assert plugin.name == name and plugin.distribution == f"{dist} 0.1"
    problem_error = plugin_error(key)
    assert isinstance(problem_error, PluginError)
    message = str(problem_error)
    assert re.search(problem, message), message
    assert message.startswith(f"plug-in {name!r} ({entry_points[name]} from {dist} 0.1): ")
    assert "\n" not in message
    if name == "hypersign":  # the built-in keeps its name
        assert builder_class(registered()["hypersign"]).__module__ == "baselines.hypersign.model"
    else:
        with pytest.raises(PluginError, match=problem):
            baselines.get_method(name)
    assert resolve_methods([key]) == [key]  # named: not "unknown", it fails when built
    assert key in resolve_methods(None, broken_plugins=True)
    assert key not in resolve_methods(None)
    assert collect_methods()[key]["error"] == plugin.error
    assert main(["info"]) == 0
    row = rf"\n{re.escape(key)} +plug-in {re.escape(entry_points[name])} \({dist} 0\.1\): " \
          rf"CANNOT BE USED: {re.escape(plugin.error)}\n"
    assert re.search(row, capsys.readouterr().out)
    assert main(["params", "--methods", key]) == 2  # one line on stderr, no traceback
    printed = capsys.readouterr().err
    assert printed == f"signbench: error: {message}\n"


def test_plugin_builders_and_duplicate_names(plugin_root):
    registers_itself = "\nfrom harness.method import register\nregister('good')(Good)\n"
    write_distribution(plugin_root, "good-one", {"good": "good_mod:build_good"},
                       {"good_mod": GOOD.format(name="good") + registers_itself})
    write_distribution(plugin_root, "good-two", {"good": "good_two_mod:Good"},
                       {"good_two_mod": GOOD.format(name="good")})
    assert "good" in baselines.list_methods()
    assert registered()["good"].__name__ == "build_good"  # the entry point's builder decides
    method = baselines.get_method("good")
    assert type(method).__module__ == "good_mod" and method.profile == "tiny"
    plugins = baselines.list_plugins()
    assert plugins["good"].error is None and plugins["good"].distribution == "good-one 0.1"
    second = plugins["good (good-two 0.1)"]
    assert second.error == "the name 'good' is already taken by plug-in good_mod:build_good " \
                           "from good-one 0.1"
    forget_plugins()
    assert "good" not in registered()


def _install_example(tmp_path: Path) -> Path:
    """``pip install`` the example plug-in (from a copy: building writes into the source tree)
    into a fresh target folder; returns the folder."""
    source, site = tmp_path / "plugin-src", tmp_path / "plugin-site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-cache-dir", "--target", str(site),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    assert (site / "keypoint_gru.py").is_file()
    return site


def _signbench() -> list[str]:
    script = Path(sys.executable).parent / "signbench"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


@pytest.mark.slow  # a pip build and a 2-epoch run: ~50 s on a busy 2-core machine; runs in CI
def test_example_plugin_installs_runs_and_reaches_the_leaderboard(tmp_path):
    site = _install_example(tmp_path)
    broken = tmp_path / "broken-site"
    broken.mkdir()
    write_distribution(broken, "broken-plugin", {"broken": "not_there_xyz:Method"}, {})
    out, results = tmp_path / "runs", tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(site), str(broken),
                                          os.environ.get("PYTHONPATH", str(ROOT))])}
    done = subprocess.run(
        [*_signbench(), "run", "--methods", EXAMPLE_KEY, "broken", "--device", "cpu",
         "--epochs", "2", "--train-size", "48", "--eval-size", "8", "--out", str(out),
         "--results", str(results), "--quiet"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the broken plug-in fails, the example runs
    assert "1/2 methods succeeded" in done.stdout
    assert "FAILED broken: PluginError: plug-in 'broken' (not_there_xyz:Method from " \
           "broken-plugin 0.1): failed to import: ModuleNotFoundError" in done.stderr
    failure = json.loads((out / "failures" / "broken.json").read_text(encoding="utf-8"))
    assert failure["type"] == "PluginError"

    run_dir = out / f"{EXAMPLE_KEY}__synthetic-de__tiny__native__cpu"
    for split in ("dev", "test"):
        run = load_run(run_dir / f"{EXAMPLE_KEY}__synthetic-de__{split}__tiny__native__cpu.json")
        assert run["method"] == EXAMPLE_KEY and run["task"] == "translation"
        assert 0 <= run["accuracy"]["bleu4"] <= 100 and "signature" in run["accuracy"]
        assert run["efficiency"]["latency_ms"]["p50"] > 0
        assert run["efficiency"]["params"]["total"] > 100_000
        history = run["training"]["history"]
        assert len(history) == 2 and history[1]["losses"]["loss"] < history[0]["losses"]["loss"]
        outputs = (run_dir / run["outputs"]).read_text(encoding="utf-8").splitlines()
        assert len(outputs) == 8
    with (results / "leaderboard-full.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == EXAMPLE_KEY]
    assert sorted(r["split"] for r in rows) == ["dev", "test"]
    assert all(float(r["latency p50 (ms)"]) > 0 for r in rows)
    assert f"| {EXAMPLE_KEY} " in (results / "leaderboard.md").read_text(encoding="utf-8")


def test_example_plugin_is_small_and_declares_its_entry_point():
    source = (EXAMPLE / "keypoint_gru.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) < 200
    project = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points."signbench.methods"]' in project
    assert f'{EXAMPLE_KEY} = "keypoint_gru:KeypointGRU"' in project
