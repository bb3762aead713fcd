"""The command line as a person uses it: help, list, score, show, and the errors for bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "cortexbench", *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_score_help_explains_the_command():
    out = cli("score", "--help").stdout
    for text in ("MODEL", "BENCHMARK", "--device", "auto", "--registry", "--weights", "--no-cache"):
        assert text in out


@pytest.mark.slow
def test_score_list_show_round_trip(shared_data, tmp_path):
    reg = tmp_path / "reg"
    out = cli("score", "mobilenet_v2", "kriegeskorte2008.mit-rsa", "--registry", str(reg), "--quiet").stdout
    assert "score" in out and "stored:" in out
    stored = Path(out.split("stored:")[1].strip())
    assert stored.is_file() and stored.suffix == ".nc"
    listing = json.loads(cli("list", "scores", "--registry", str(reg), "--json").stdout)
    assert [(r["model"], r["benchmark"], r["state"]) for r in listing] == [
        ("mobilenet_v2", "kriegeskorte2008.mit-rsa", "scored")]
    shown = json.loads(cli("show", "mobilenet_v2", "kriegeskorte2008.mit-rsa", "--registry", str(reg),
                           "--json", "--plot", str(tmp_path / "p.png")).stdout)
    assert shown["score"] == pytest.approx(float(listing[0]["score"]), abs=1e-4)
    assert shown["provenance"]["model_fingerprint"]["weights"].startswith("sha256:2778381c")
    assert shown["provenance"]["data_checksums"]["rsa92_kriegeskorte2008"]["files"] == 4
    assert (tmp_path / "p.png").stat().st_size > 10_000
    text = cli("show", "mobilenet_v2", "kriegeskorte2008.mit-rsa", "--registry", str(reg)).stdout
    assert "raw" in text and "provenance:" in text and "layer" in text


def test_bad_input_gets_one_clear_line_and_exit_code_2(tmp_path):
    unknown = cli("score", "mobilenet-v2", "kriegeskorte2008.hit-rsa", "--registry", str(tmp_path), check=False)
    assert unknown.returncode == 2 and "Did you mean: mobilenet_v2" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    device = cli("score", "mobilenet_v2", "kriegeskorte2008.hit-rsa", "--device", "tpu",
                 "--registry", str(tmp_path), check=False)
    assert device.returncode == 2 and "--device must be" in device.stderr
    missing = cli("show", "mobilenet_v2", "kriegeskorte2008.hit-rsa", "--registry", str(tmp_path), check=False)
    assert missing.returncode == 2 and "cortexbench score mobilenet_v2 kriegeskorte2008.hit-rsa" in missing.stderr
    option = cli("score", "mobilenet_v2", "kriegeskorte2008.hit-rsa", "--benchmark-option", "seed",
                 "--registry", str(tmp_path), check=False)
    assert option.returncode == 2 and "KEY=VALUE" in option.stderr


def test_missing_mirror_is_reported_with_the_variable_to_set(tmp_path):
    result = cli("score", "mobilenet_v2", "kriegeskorte2008.hit-rsa", "--registry", str(tmp_path),
                 env={"CORTEXBENCH_MIRRORS": str(tmp_path / "nowhere"), "CORTEXBENCH_OFFLINE": "1"}, check=False)
    assert result.returncode == 2
    assert "mobilenet_quantized.pt" in result.stderr and "CORTEXBENCH_MIRRORS" in result.stderr


def test_data_verify_checks_every_declared_file(shared_data):
    out = cli("data", "verify", "rsa92_kriegeskorte2008").stdout
    assert "4/4 files verified" in out
