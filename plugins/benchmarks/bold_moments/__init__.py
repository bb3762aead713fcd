"""BOLD Moments (OpenNeuro ds005165) video-fMRI benchmarks after Höfling et al. (ICLR 2026).

* ``bmd.rsa`` / ``bmd.linear-predictivity``: video models, RSA or ridge on 19 HCP-MMP1 regions of 10 subjects;
* ``bmd.captions-rsa`` / ``bmd.captions-linear-predictivity``: text models on the clips' GIT captions.

The fMRI itself is not bundled (pass ``--benchmark-option root=PATH`` or set ``$CORTEXBENCH_BOLD_MOMENTS``); the
captions are declared as dataset ``bold_moments`` and resolve from the mirror.
"""
from cortexbench.data import DatasetSpec, FileSpec
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec, CommandSpec

VERSION = "1"
_OPENNEURO = ("https://raw.githubusercontent.com/OpenNeuroDatasets/ds005165/"
              "f8c96c69ca42c2d5e626df231be9874379e97a23/")

BOLD_MOMENTS_METADATA = DatasetSpec(
    identifier="bold_moments",
    files=(
        FileSpec("derivatives/stimuli_metadata/llm_frame_annotations.json",
                 "084e8c668c8c953e1cd41724ff700c22063b3126c52ff9f1522e6a42305c52a3", 319698,
                 _OPENNEURO + "derivatives/stimuli_metadata/llm_frame_annotations.json"),
    ),
    description="BOLD Moments metadata: GIT (git-large-coco) captions of the middle frame of all 1102 clips",
    license="CC0",
    citation="Lahner B et al. (2024). Modeling short visual events through the BOLD Moments video fMRI dataset and "
             "metadata. Nature Communications 15:6241. OpenNeuro ds005165.",
)

CITATION = ("Höfling, Tangemann, Piefke, Keller, Franke, Bethge (2026). Only brains align with brains: "
            "cross-region alignment patterns expose limits of normative models. ICLR. arXiv:2604.21780. "
            "Data: " + BOLD_MOMENTS_METADATA.citation)
BIBTEX = """@inproceedings{hoefling2026only,
  title={Only Brains Align with Brains: Cross-Region Alignment Patterns Expose Limits of Normative Models},
  author={H{\\"o}fling and Tangemann and Piefke and Keller and Franke and Bethge},
  booktitle={International Conference on Learning Representations}, year={2026}
}"""

_METRIC_ID = {"rsa": "rsa", "linear-predictivity": "ridge"}


def _factory(identifier: str, metric: str, route: str):
    def factory(**options):
        from .benchmark import BoldMomentsBenchmark

        return BoldMomentsBenchmark(identifier=identifier, version=VERSION, metric_name=metric, route=route,
                                    **options)

    return factory


@hookimpl
def cortexbench_benchmarks():
    specs = []
    for name, metric in _METRIC_ID.items():
        what = ("RSA (1 - Pearson RDMs, Pearson comparison)" if metric == "rsa" else
                "ridge linear predictivity (5-fold CV, alpha by LOO per region, R^2)")
        for route, prefix, modality, stimuli in (("video", "bmd", "video", "1102 3-s clips"),
                                                 ("captions", "bmd.captions", "text", "GIT captions of the clips")):
            identifier = f"{prefix}-{name}" if route == "captions" else f"{prefix}.{name}"
            specs.append(BenchmarkSpec(
                identifier=identifier, factory=_factory(identifier, metric, route),
                description=f"BOLD Moments fMRI, {stimuli}: {what}, 19 HCP-MMP1 regions x 10 subjects, train/test "
                            "splits, ceiled by the pairwise lower ceiling (needs root= to the ds005165 data)",
                version=VERSION, citation=CITATION, bibtex=BIBTEX, parent="bmd", metric=metric,
                datasets=("bold_moments",), modalities=(modality,)))
    return specs


@hookimpl
def cortexbench_datasets():
    return [BOLD_MOMENTS_METADATA]


def _import_arguments(parser) -> None:
    parser.add_argument("path", metavar="PATH", help="the release's precomputed_results folder (or a part of it)")
    parser.add_argument("--registry", metavar="PATH")
    parser.add_argument("--metric", action="append", choices=("rsa", "linear_predictivity"),
                        help="import only this metric (default: all present); repeatable")


def _import_run(args) -> int:
    from .released import import_release

    stored = import_release(args.path, registry=args.registry, metrics=args.metric)
    for model, benchmark, path in stored:
        print(f"stored {model} x {benchmark}: {path}")
    print(f"{len(stored)} assemblies imported; run `cortexbench apa {stored[0][1]}` to analyse them")
    return 0


@hookimpl
def cortexbench_commands():
    return [CommandSpec(
        name="import-apa", help="import Höfling et al.'s released scoresheets into the registry",
        description="Read precomputed_results/<kind>/<hash>/{config.yaml,scoresheets/*.csv} and store brain-to-brain "
                    "and model assemblies under benchmarks bmd-released.<metric>.",
        add_arguments=_import_arguments, run=_import_run)]
