"""Discovery through entry points, isolation of broken plugins, identifier lookup."""
import subprocess
import sys
import textwrap

import pytest

from cortexbench.errors import UnknownIdentifierError
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec, ModelSpec
from cortexbench.plugin_manager import PluginManager

BUILTINS = {"mobilenet_v2", "timm_models", "rsa", "classic_rsa"}


def _model(identifier):
    return ModelSpec(identifier, factory=lambda: None, description="test model")


class GoodPlugin:
    @hookimpl
    def cortexbench_models(self):
        return [_model("good/one"), _model("mobilenet_v2")]  # the second collides with a built-in


class RaisingPlugin:
    @hookimpl
    def cortexbench_models(self):
        raise RuntimeError("boom")

    @hookimpl
    def cortexbench_benchmarks(self):
        return [BenchmarkSpec("raising.still-works", factory=lambda: None, description="d", version="1",
                              citation="c")]


class WrongTypePlugin:
    @hookimpl
    def cortexbench_models(self):
        return ["not a spec", _model("has space")]


def test_builtins_register_through_the_entry_point_group():
    manager = PluginManager()
    assert BUILTINS <= set(manager.plugin_versions)
    assert manager.get("model", "mobilenet_v2").plugin == "mobilenet_v2"
    assert manager.get("benchmark", "kriegeskorte2008.hit-rsa").plugin == "classic_rsa"
    assert not [f for f in manager.failures if f.plugin in BUILTINS]


def test_broken_plugins_are_reported_by_name_and_do_not_stop_others():
    manager = PluginManager(extra_plugins=[("good", GoodPlugin()), ("raising", RaisingPlugin()),
                                           ("wrongtype", WrongTypePlugin())])
    problems = {f.plugin: [] for f in manager.failures}
    for f in manager.failures:
        problems[f.plugin].append(f.problem)
    assert any("already registered by plugin 'mobilenet_v2'" in p for p in problems["good"])
    assert any("raised RuntimeError: boom" in p for p in problems["raising"])
    assert any("expected ModelSpec" in p for p in problems["wrongtype"])
    assert any("invalid identifier 'has space'" in p for p in problems["wrongtype"])
    # everything else still loads, and the built-in keeps its identifier
    assert manager.get("model", "good/one").plugin == "good"
    assert manager.get("model", "mobilenet_v2").plugin == "mobilenet_v2"
    assert manager.get("benchmark", "raising.still-works").plugin == "raising"


def test_import_error_in_a_third_party_entry_point_is_isolated(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[cortexbench]\nbroken = broken_plugin_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    failure = next(f for f in manager.failures if f.plugin == "broken-plugin:broken")
    assert "ModuleNotFoundError" in failure.problem
    assert BUILTINS <= set(manager.plugin_versions)


def test_unknown_identifier_suggests_close_matches():
    manager = PluginManager()
    with pytest.raises(UnknownIdentifierError) as info:
        manager.get("model", "mobilenetv2")
    assert "mobilenet_v2" in str(info.value) and "cortexbench list models" in str(info.value)
    with pytest.raises(UnknownIdentifierError, match="kriegeskorte2008.hit-rsa"):
        manager.get("benchmark", "kriegeskorte2008.hit")


def test_model_family_resolves_open_ended_identifiers():
    manager = PluginManager()
    spec = manager.model_spec("timm/resnet18.untrained-seed7")
    assert spec.identifier == "timm/resnet18.untrained-seed7" and spec.trained is False


def test_listing_imports_no_deep_learning_library():
    code = textwrap.dedent("""
        import sys
        from cortexbench.cli import main
        for kind in ("models", "benchmarks", "metrics", "datasets", "plugins"):
            assert main(["list", kind]) == 0
        heavy = sorted({"torch", "timm", "transformers", "torchvision", "sklearn"} & set(sys.modules))
        assert not heavy, heavy
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mobilenet_v2" in result.stdout and "kriegeskorte2008.hit-rsa" in result.stdout


def test_a_broken_plugin_command_is_reported_and_the_cli_still_works(monkeypatch, capsys):
    from cortexbench import cli, plugin_manager
    from cortexbench.interfaces import CommandSpec

    def clashing(parser):
        parser.add_argument("--x")
        parser.add_argument("--x")  # argparse.ArgumentError

    class CommandPlugin:
        @hookimpl
        def cortexbench_commands(self):
            return [CommandSpec("broken-cmd", "broken", clashing, lambda args: 0),
                    CommandSpec("list", "steals a core name", lambda p: None, lambda args: 0),
                    CommandSpec("hello", "works", lambda p: p.add_argument("--name", default="x"),
                                lambda args: print(f"hello {args.name}") or 0)]

    manager = PluginManager(extra_plugins=[("cmds", CommandPlugin())])
    monkeypatch.setattr(plugin_manager, "get_plugin_manager", lambda: manager)
    assert cli.main(["list", "metrics"]) == 0                      # still works, core `list` untouched
    assert cli.main(["hello", "--name", "you"]) == 0
    out, err = capsys.readouterr()
    assert "hello you" in out and "rsa" in out
    problems = [str(f) for f in manager.failures if f.plugin == "cmds"]
    assert any("'broken-cmd' could not declare its arguments: ArgumentError" in p for p in problems)
    assert any("'list' is a core command" in p for p in problems)
