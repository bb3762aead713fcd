"""A third-party plugin, pip-installed the way users ship one, is discovered and scored with no change here."""
import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cortexbench-example-plugin"


def test_example_plugin_installs_lists_and_scores(tmp_path, shared_data):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                              "--no-build-isolation", "--target", str(target), str(EXAMPLE)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "cortexbench", *args], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        return result.stdout

    models = {r["identifier"]: r for r in json.loads(cli("list", "models", "--json"))}
    assert models["example/pixels"]["plugin"] == "cortexbench-example-plugin:example"
    assert "mobilenet_v2" in models                                   # built-ins still there
    benchmarks = {r["identifier"] for r in json.loads(cli("list", "benchmarks", "--json"))}
    assert "example.kriegeskorte2008-animacy" in benchmarks
    out = cli("score", "example/pixels", "example.kriegeskorte2008-animacy", "--registry", str(tmp_path / "reg"),
              "--quiet")
    assert "stored:" in out
    scores = json.loads(cli("list", "scores", "--registry", str(tmp_path / "reg"), "--json"))
    assert scores[0]["model"] == "example/pixels" and scores[0]["state"] == "scored"
    shown = json.loads(cli("show", "example/pixels", "example.kriegeskorte2008-animacy", "--registry",
                           str(tmp_path / "reg"), "--json"))
    assert shown["provenance"]["model_plugin"]["name"] == "cortexbench-example-plugin:example"
    assert shown["provenance"]["model_plugin"]["version"] == "0.1.0"
