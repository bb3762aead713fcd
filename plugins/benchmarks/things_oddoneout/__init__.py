"""THINGS odd-one-out: probing human triplet choices, and model recovery under flexible evaluation.

* ``things.oddoneout-zeroshot`` / ``-diagonal`` / ``-rectangular`` / ``-full``: the concept features of a model
  (text models read the concept words; vision models a THINGS image folder the user supplies) predict real human
  odd-one-out choices through a transform W of increasing flexibility, fitted with scalar-matrix shrinkage by
  full-batch L-BFGS on concept-disjoint folds; accuracy divided by the leave-one-out noise ceiling.
* ``things.recovery``: would the model be identifiable? Generating models fitted to the human triplets simulate
  synthetic judgments; every candidate (the model under test and a pool of registered models) is refitted and the
  best-predicting one "recovered" (Avitan & Golan, NeurIPS 2025). ``things.recovery-quick`` is a CPU-sized grid.
"""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec

from .dataset import THINGS

VERSION = "1"
CITATION = ("Avitan I, Golan T (2025). Model-Behavior Alignment under Flexible Evaluation: When the Best-Fitting "
            "Model Isn't the Right One. NeurIPS 38. Data: Hebart MN, Zheng CY, Pereira F, Baker CI (2020). Revealing "
            "the multidimensional mental representations of natural objects underlying human similarity judgements. "
            "Nature Human Behaviour 4:1173-1185.")
BIBTEX = """@inproceedings{avitan2025model,
  title={Model-Behavior Alignment under Flexible Evaluation: When the Best-Fitting Model Isn't the Right One},
  author={Avitan, Itamar and Golan, Tal},
  booktitle={Advances in Neural Information Processing Systems 38}, pages={13447--13486}, year={2025}
}
@article{hebart2020revealing,
  title={Revealing the multidimensional mental representations of natural objects underlying human similarity
         judgements},
  author={Hebart, Martin N and Zheng, Charles Y and Pereira, Francisco and Baker, Chris I},
  journal={Nature Human Behaviour}, volume={4}, number={11}, pages={1173--1185}, year={2020}
}"""

_PROBES = {
    "zeroshot": ("zero_shot", "no fitting (W = I): raw feature dot products"),
    "diagonal": ("diagonal", "a diagonal W (feature re-weighting)"),
    "rectangular": ("rectangular", "a rectangular 30 x p W (projection to 30 dimensions)"),
    "full": ("full", "a full p x p W"),
}


def _probe_factory(identifier: str, transform: str):
    def factory(**options):
        from .probe_benchmark import ThingsProbeBenchmark

        return ThingsProbeBenchmark(identifier=identifier, version=VERSION, transform=transform, **options)

    return factory


def _recovery_factory(identifier: str, quick: bool):
    def factory(**options):
        from .recovery_benchmark import QUICK_DEFAULTS, ThingsRecoveryBenchmark

        settings = {**(QUICK_DEFAULTS if quick else {}), **options}
        return ThingsRecoveryBenchmark(identifier=identifier, version=VERSION, **settings)

    return factory


@hookimpl
def cortexbench_benchmarks():
    common = dict(version=VERSION, citation=CITATION, bibtex=BIBTEX, metric="", datasets=(THINGS.identifier,),
                  modalities=("text", "image"))
    specs = [
        BenchmarkSpec(identifier=f"things.oddoneout-{name}", factory=_probe_factory(f"things.oddoneout-{name}", kind),
                      description=f"THINGS odd-one-out, 20k real human judgments: accuracy of {what}"
                                  + ("" if kind == "zero_shot" else ", fitted with scalar-matrix shrinkage on "
                                                                    "concept-disjoint 3-fold CV")
                                  + ", divided by the leave-one-out noise ceiling",
                      parent="things.oddoneout", **common)
        for name, (kind, what) in _PROBES.items()
    ]
    specs += [
        BenchmarkSpec(identifier="things.recovery", factory=_recovery_factory("things.recovery", quick=False),
                      description="model recovery (Avitan & Golan 2025): share of simulations in which the model, "
                                  "as data generator, is identified among a candidate pool; paper grid (GPU)",
                      parent="things", **common),
        BenchmarkSpec(identifier="things.recovery-quick", factory=_recovery_factory("things.recovery-quick", True),
                      description="model recovery on a CPU-sized grid (N = 100, 400, 1600; 3 seeds; 3 lambdas)",
                      parent="things.recovery", **common),
    ]
    return specs


@hookimpl
def cortexbench_datasets():
    return [THINGS]
