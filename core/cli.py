"""``cortexbench`` command line: score, list, show, data.

Importing this module stays light (no torch, no xarray): ``list`` answers from plugin metadata alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__, config
from .errors import CortexbenchError

LIST_KINDS = ("models", "benchmarks", "metrics", "datasets", "scores", "plugins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cortexbench",
        description="Score AI models against brain and behaviour benchmarks and keep the results in a local registry.",
        epilog=f"Environment: ${config.MIRRORS_ENV} (data mirror folders), ${config.HOME_ENV} (cache root), "
               f"${config.REGISTRY_ENV} (registry), ${config.OFFLINE_ENV}=1 (no downloads), "
               f"${config.WEIGHTS_ENV} (local weight files).")
    parser.add_argument("--version", action="version", version=f"cortexbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = sub.add_parser(
        "score", help="score a model on a benchmark and store the result",
        description="Extract the model's activations for the benchmark's stimuli (cached by content), compute "
                    "the benchmark's metric and noise ceiling, print the ceiled score with its error, and store the "
                    "score assembly with its provenance in the registry.",
        epilog="Example: cortexbench score mobilenet_v2 kriegeskorte2008.hit-rsa")
    score.add_argument("model", metavar="MODEL", help="model identifier (see `cortexbench list models`)")
    score.add_argument("benchmark", metavar="BENCHMARK", help="benchmark identifier (see `cortexbench list benchmarks`)")
    score.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    score.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                       help="activation precision: auto = bf16 autocast on CUDA, fp32 on CPU (default: auto)")
    score.add_argument("--batch-size", type=int, default=64, help="stimuli per forward pass (default: 64)")
    score.add_argument("--registry", metavar="PATH", help=f"registry folder (default: ${config.REGISTRY_ENV} or the "
                                                          "user cache)")
    score.add_argument("--cache-dir", metavar="PATH", help="activation cache folder "
                                                           f"(default: ${config.HOME_ENV}/activations)")
    score.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    score.add_argument("--no-store", action="store_true", help="print the score without writing it to the registry")
    score.add_argument("--weights", metavar="PATH", help="local weights file for a pretrained model")
    score.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra option for the model factory (value parsed as JSON when possible); repeatable")
    score.add_argument("--benchmark-option", action="append", default=[], metavar="KEY=VALUE",
                       help="extra option for the benchmark (value parsed as JSON when possible); repeatable")
    score.add_argument("--quiet", action="store_true", help="no progress bars")

    lister = sub.add_parser("list", help="list registered models, benchmarks, metrics, datasets, stored scores",
                            description="List what the installed plugins provide, or the scores in the registry.")
    lister.add_argument("kind", choices=LIST_KINDS)
    lister.add_argument("--registry", metavar="PATH", help="registry folder (for `list scores`)")
    lister.add_argument("--json", action="store_true", help="machine-readable output")

    show = sub.add_parser("show", help="show a stored score assembly and its provenance",
                          description="Print the stored score assembly (all dimensions) and how it was made.")
    show.add_argument("model", metavar="MODEL")
    show.add_argument("benchmark", metavar="BENCHMARK")
    show.add_argument("--registry", metavar="PATH")
    show.add_argument("--variant", default="default",
                      help="which stored variant: 'default' (the plugins' default options) or an options-<digest> "
                           "name from `cortexbench list scores` (default: default)")
    show.add_argument("--plot", metavar="PNG", help="also write a plot of the per-layer scores to this file")
    show.add_argument("--json", action="store_true", help="print headline numbers and provenance as JSON")

    ceiling = sub.add_parser(
        "ceiling", help="compute and store a benchmark's brain-to-brain scores and noise ceilings",
        description="Score every region of partner subjects (and the leave-one-subject-out mean) against every region "
                    "of each subject, and store the result under model 'brain-to-brain' (needed by `apa`).",
        epilog="Example: cortexbench ceiling bmd.rsa --benchmark-option root=/data/ds005165")
    ceiling.add_argument("benchmark", metavar="BENCHMARK")
    ceiling.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    ceiling.add_argument("--registry", metavar="PATH")
    ceiling.add_argument("--benchmark-option", action="append", default=[], metavar="KEY=VALUE",
                         help="extra option for the benchmark (value parsed as JSON when possible); repeatable")
    ceiling.add_argument("--quiet", action="store_true", help="no progress bars")

    apa = sub.add_parser(
        "apa", help="alignment-pattern analysis of stored scores (Höfling et al. 2026)",
        description="Compare each model's alignment pattern (its scores over all target regions) with the brain's, "
                    "per region: best layer on train, test score and APS with bootstrap CIs, effectively "
                    "equivalent models. Needs `cortexbench ceiling BENCHMARK` (or an import) first.")
    apa.add_argument("benchmark", metavar="BENCHMARK")
    apa.add_argument("--models", nargs="+", metavar="MODEL", help="models to compare (default: all stored)")
    apa.add_argument("--outcome", default="score_norm_lower", choices=("score", "score_norm_lower",
                                                                      "score_norm_upper"),
                     help="raw score or score divided by the lower/upper ceiling (default: score_norm_lower)")
    apa.add_argument("--select", action="append", default=[], metavar="DIM=VALUE",
                     help="pick one value of an extra dimension of the scores (e.g. sigma=1.0); repeatable")
    apa.add_argument("--n-bootstrap", type=int, default=1000, help="subject bootstrap resamples (default: 1000)")
    apa.add_argument("--registry", metavar="PATH")
    apa.add_argument("--variant", default="default",
                     help="registry variant of the brain and model scores (see `cortexbench list scores`)")
    apa.add_argument("--plot", metavar="DIR", help="write alignment-pattern heatmaps and score-vs-APS plots here")
    apa.add_argument("--output", metavar="NC", help="write the full analysis as a netCDF file")
    apa.add_argument("--json", action="store_true", help="print one JSON row per (region, model)")

    board = sub.add_parser("leaderboard", help="models x benchmarks table of stored ceiled scores",
                           description="Rank models by their mean ceiled score over the benchmarks they were scored on, "
                                       "showing coverage; failed and never-run pairs are shown as such, never as 0.")
    board.add_argument("--benchmarks", nargs="+", metavar="BENCHMARK", help="columns (default: all stored)")
    board.add_argument("--models", nargs="+", metavar="MODEL", help="rows (default: all stored)")
    board.add_argument("--registry", metavar="PATH")
    board.add_argument("--plot", metavar="PNG", help="also write a heatmap of the table")
    board.add_argument("--json", action="store_true")

    data = sub.add_parser("data", help="check or fetch declared datasets",
                          description="Resolve every file of a dataset (mirror, cache, download) and verify checksums.")
    data.add_argument("action", choices=("verify", "where"), help="verify: check every file; where: print local paths")
    data.add_argument("dataset", help="dataset identifier (see `cortexbench list datasets`)")
    _add_plugin_commands(sub)
    return parser


CORE_COMMANDS = ("score", "list", "show", "data", "ceiling", "apa", "leaderboard")


def _add_plugin_commands(sub) -> None:
    """Subcommands contributed by plugins through ``cortexbench_commands`` (core names cannot be taken)."""
    from .plugin_manager import PluginFailure, get_plugin_manager

    manager = get_plugin_manager()
    for name, registration in sorted(manager.registrations("command").items()):
        spec = registration.spec
        if name in CORE_COMMANDS:
            manager.failures.append(PluginFailure(registration.plugin, f"command {name!r} is a core command; ignored"))
            continue
        try:  # declare on a throwaway parser first: a broken plugin must not break the whole command line
            spec.add_arguments(argparse.ArgumentParser(prog=name, add_help=False))
        except Exception as err:  # noqa: BLE001 - any plugin error is isolated and reported by name
            manager.failures.append(PluginFailure(registration.plugin, f"command {name!r} could not declare its "
                                                                       f"arguments: {type(err).__name__}: {err}"))
            continue
        parser = sub.add_parser(name, help=f"{spec.help} [plugin {registration.plugin}]",
                                description=spec.description or spec.help)
        spec.add_arguments(parser)
        parser.set_defaults(_plugin_command=spec.run)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "_plugin_command", None) is not None:
            return args._plugin_command(args)
        return {"score": _score, "list": _list, "show": _show, "data": _data, "ceiling": _ceiling, "apa": _apa,
                "leaderboard": _leaderboard}[args.command](args)
    except CortexbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `cortexbench show ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parse_options(pairs: list[str], flag: str) -> dict[str, Any]:
    from .errors import InputError

    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _score(args: argparse.Namespace) -> int:
    from . import assembly
    from .plugin_manager import get_plugin_manager
    from .scorer import score

    plugins = get_plugin_manager()
    plugins.report_failures()
    model_options = _parse_options(args.model_option, "--model-option")
    if args.weights:
        model_options["weights"] = args.weights
    benchmark_options = _parse_options(args.benchmark_option, "--benchmark-option")
    result = score(args.model, args.benchmark, registry=args.registry, device=args.device,
                   precision=args.precision, batch_size=args.batch_size, cache=not args.no_cache,
                   cache_dir=args.cache_dir, model_options=model_options, benchmark_options=benchmark_options,
                   store=not args.no_store, progress=not args.quiet, plugins=plugins)
    ds = result.assembly
    head = assembly.headline(ds)
    print(f"{args.model} on {args.benchmark} (v{ds.attrs['benchmark_version']}, metric {ds.attrs['metric']})")
    ci = f"  95% CI [{head['ci_low']:.3f}, {head['ci_high']:.3f}]" if "ci_low" in head else ""
    print(f"  score    {head['score']:.4f} ± {head['score_error']:.4f}{ci}   ({ds.attrs['error_method']})")
    print(f"  ceiling  {head['ceiling']:.4f}   ({ds.attrs['ceiling_method']})")
    for line in _summary_lines(ds):
        print(f"  {line}")
    print(f"  device   {result.device}, {result.wall_time_s:.1f} s, activation cache "
          f"{result.cache_hits} hit(s) / {result.cache_misses} miss(es)")
    print(f"stored: {result.path}" if result.path else "not stored (--no-store)")
    if model_options or benchmark_options:
        from cortexbench.registry import variant_of

        print(f"variant {variant_of(model_options, benchmark_options)} (non-default options; the leaderboard ranks "
              f"the default variant; `cortexbench show ... --variant NAME` reads this one)")
    return 0


def _summary_lines(ds) -> list[str]:
    lines = []
    if "summary" in ds.attrs:
        lines.extend(str(ds.attrs["summary"]).splitlines())
    return lines


def _list(args: argparse.Namespace) -> int:
    if args.kind == "scores":
        return _list_scores(args)
    from .plugin_manager import get_plugin_manager

    plugins = get_plugin_manager()
    plugins.report_failures()
    if args.kind == "plugins":
        rows = [{"plugin": name, "version": version} for name, version in plugins.plugin_versions.items()]
        rows += [{"plugin": f.plugin, "version": "FAILED", "problem": f.problem} for f in plugins.failures]
        return _emit(rows, ["plugin", "version", "problem"], args.json)
    kind = args.kind[:-1]
    rows = []
    for identifier, reg in sorted(plugins.registrations(kind).items()):
        spec = reg.spec
        row = {"identifier": identifier, "plugin": reg.plugin, "description": spec.description}
        if kind == "model":
            row.update(modalities=",".join(spec.modalities), trained="yes" if spec.trained else "no")
        elif kind == "benchmark":
            row.update(version=spec.version, parent=spec.parent or "", metric=spec.metric)
        elif kind == "metric":
            row.update(version=spec.version)
        elif kind == "dataset":
            row.update(files=len(spec.files), size=_size(spec.total_size))
        rows.append(row)
    if kind == "model":
        for prefix, reg in sorted(plugins.registrations("model family").items()):
            rows.append({"identifier": f"{prefix}<name>", "plugin": reg.plugin, "description": reg.spec.description,
                         "modalities": "", "trained": ""})
    columns = {"model": ["identifier", "modalities", "trained", "plugin", "description"],
               "benchmark": ["identifier", "version", "metric", "parent", "plugin", "description"],
               "metric": ["identifier", "version", "plugin", "description"],
               "dataset": ["identifier", "files", "size", "plugin", "description"]}[kind]
    return _emit(rows, columns, args.json)


def _list_scores(args: argparse.Namespace) -> int:
    from cortexbench.registry import Registry

    registry = Registry(args.registry)
    rows = [{"model": r.model, "benchmark": r.benchmark, "version": r.benchmark_version, "state": r.state,
             "variant": r.variant, "score": _fmt(r.score), "error": _fmt(r.score_error),
             "ceiling": _fmt(r.ceiling), "updated": r.updated_at[:19]} for r in registry.scores()]
    if not rows and not args.json:
        print(f"no scores stored in {registry.root} yet; run `cortexbench score MODEL BENCHMARK`")
        return 0
    return _emit(rows, ["model", "benchmark", "version", "variant", "state", "score", "error", "ceiling", "updated"],
                 args.json)


def _show(args: argparse.Namespace) -> int:
    import xarray as xr

    from . import assembly
    from cortexbench.registry import Registry

    registry = Registry(args.registry)
    stored = registry.get(args.model, args.benchmark, variant=args.variant)
    ds = stored.load()
    prov = json.loads(ds.attrs.get("provenance", "{}"))
    if args.plot:
        from .plots import plot_stored

        plot_stored(ds, args.plot)
    if args.json:
        print(json.dumps({"path": str(stored.path), "sha256": stored.row.sha256, **assembly.headline(ds),
                          "attrs": {k: v for k, v in ds.attrs.items() if k != "provenance"}, "provenance": prov},
                         indent=2, default=str))
    else:
        print(f"{stored.path}  (sha256 {stored.row.sha256[:16]}..., stored {stored.row.updated_at[:19]})\n")
        with xr.set_options(display_width=110, display_max_rows=40):
            print(ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds)
        print("\nattributes:")
        for key, value in ds.attrs.items():
            if key != "provenance":
                print(f"  {key}: {value}")
        print("\nprovenance:")
        for key, value in prov.items():
            if key not in ("activation_cache_keys", "traceback"):
                print(f"  {key}: {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _ceiling(args: argparse.Namespace) -> int:
    from . import assembly
    from .plugin_manager import get_plugin_manager
    from .scorer import score_brain_to_brain

    plugins = get_plugin_manager()
    plugins.report_failures()
    result = score_brain_to_brain(args.benchmark, registry=args.registry, device=args.device,
                                  benchmark_options=_parse_options(args.benchmark_option, "--benchmark-option"),
                                  progress=not args.quiet, plugins=plugins)
    head = assembly.headline(result.assembly)
    print(f"brain-to-brain on {args.benchmark}: mean lower ceiling {head['score']:.4f} ± {head['score_error']:.4f}, "
          f"upper (LOSO) ceiling {head['ceiling']:.4f}  ({result.device}, {result.wall_time_s:.1f} s)")
    print(f"stored: {result.path}")
    return 0


def _apa(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import alignment_patterns as apa
    from cortexbench.registry import Registry

    select = _parse_options(args.select, "--select")
    models, brain = apa.load_from_registry(Registry(args.registry), args.benchmark, args.models, args.variant)
    result = apa.analyze(models, brain, outcome_kind=args.outcome, n_bootstrap=args.n_bootstrap, select=select)
    rows = apa.summary_rows(result)
    if args.output:
        result.to_netcdf(args.output, engine="h5netcdf")
    if args.plot:
        folder = Path(args.plot)
        folder.mkdir(parents=True, exist_ok=True)
        apa.plot_alignment_patterns(result, folder / "alignment_patterns.png")
        apa.plot_score_vs_aps(result, folder / "score_vs_aps.png")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"alignment-pattern analysis of {len(models)} model(s) on {args.benchmark} ({args.outcome}, "
          f"{args.n_bootstrap} subject bootstraps; * = effectively equivalent on score and APS; "
          f"- = fewer than {apa.MIN_SUBJECTS} subjects, not tested)")
    print(f"{'REGION':7} {'MODEL':40} {'N':>3} {'LAYER':18} {'SCORE [95% CI]':24} {'APS [95% CI]':24} BRAIN-APS")
    for row in rows:
        mark = "*" if row["equivalent_both"] else (" " if row["eligible"] else "-")
        print(f"{row['region']:7} {mark}{row['model'][:39]:39} {row['n_subjects']:3d} {row['best_layer'][:18]:18} "
              f"{row['score']:.3f} [{row['score_ci'][0]:.3f}, {row['score_ci'][1]:.3f}]   "
              f"{row['aps']:.3f} [{row['aps_ci'][0]:.3f}, {row['aps_ci'][1]:.3f}]   {row['brain_aps']:.3f}")
    if args.plot:
        print(f"plots written to {args.plot}")
    if args.output:
        print(f"analysis written to {args.output}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from cortexbench.registry import Registry, leaderboard

    registry = Registry(args.registry)
    board = leaderboard.build(registry, args.benchmarks, args.models)
    if not board.models:
        print(f"no scores stored in {registry.root} yet; run `cortexbench score MODEL BENCHMARK`")
        return 0
    if args.plot:
        leaderboard.plot(board, args.plot)
    _emit(board.rows(), ["model", "mean", "coverage", *board.benchmarks], args.json)
    if args.plot and not args.json:
        print(f"plot written to {args.plot}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data import resolve, verify
    from .plugin_manager import get_plugin_manager

    dataset = get_plugin_manager().dataset(args.dataset)
    if args.action == "where":
        for spec in dataset.files:
            print(resolve(dataset, spec.path))
        return 0
    results = verify(dataset)
    bad = [(p, problem) for p, problem in results if problem]
    print(f"{dataset.identifier}: {len(results) - len(bad)}/{len(results)} files verified ({_size(dataset.total_size)})")
    for path, problem in bad:
        print(f"  {path}: {problem}")
    return 1 if bad else 0


def _emit(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = [c for c in columns if any(c in r for r in rows)] or columns
    widths = {c: min(60, max([len(c)] + [len(str(r.get(c, ""))) for r in rows])) for c in columns}
    width = os.get_terminal_size().columns if sys.stdout.isatty() else 200
    print("  ".join(c.upper().ljust(widths[c]) for c in columns)[:width])
    for row in rows:
        cells = [str(row.get(c, "")) for c in columns]
        cells = [v if len(v) <= widths[c] else v[: widths[c] - 1] + "…" for v, c in zip(cells, columns)]
        print("  ".join(v.ljust(widths[c]) for v, c in zip(cells, columns))[:width].rstrip())
    return 0


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


if __name__ == "__main__":
    raise SystemExit(main())
