"""Classic RSA benchmarks on real fMRI and electrophysiology RDMs, fully offline.

* ``kriegeskorte2008.hit-rsa``: human IT fMRI, 4 subjects (Kriegeskorte et al. 2008).
* ``kriegeskorte2008.mit-rsa``: monkey IT electrophysiology, one pooled RDM (uncieled).
* ``cichy2014.{evc,it}-rsa``: the same 92 objects, 15 subjects' EVC / IT fMRI RDMs (Cichy et al. 2014).
* ``algonauts2019.{evc,it}-rsa``: 78 Algonauts-2019 images, 15 subjects' EVC / IT fMRI RDMs (barely reliable: the
  ceiling is reported, not divided by).
* ``cichy2014.rsa``, ``algonauts2019.rsa``: both regions in one assembly (region dimension, train/test halves) with
  a brain-to-brain comparison, for ``cortexbench ceiling`` and ``cortexbench apa``.
"""
from pathlib import Path

from cortexbench.data import DatasetSpec, FileSpec
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec

VERSION = "2"  # 2: the error bootstraps the whole held-out procedure; region score = ratio of means
_RSATOOLBOX = ("https://raw.githubusercontent.com/rsagroup/rsatoolbox/f1f83cadb7243492a1aae7460466e0f0140b20ac/"
               "demos/92imageData/")

KRIEGESKORTE2008 = DatasetSpec(
    identifier="rsa92_kriegeskorte2008",
    files=(
        FileSpec("Kriegeskorte_Neuron2008_supplementalData.mat",
                 "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504", 3603779,
                 _RSATOOLBOX + "Kriegeskorte_Neuron2008_supplementalData.mat"),
        FileSpec("92_brainRDMs.mat", "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c", 224663,
                 _RSATOOLBOX + "92_brainRDMs.mat"),
        FileSpec("92_modelRDMs.mat", "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a", 333004,
                 _RSATOOLBOX + "92_modelRDMs.mat"),
        FileSpec("92_behavRDMs.mat", "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f", 982719,
                 _RSATOOLBOX + "92_behavRDMs.mat"),
    ),
    description="Kriegeskorte et al. 2008: 92 object images, human IT (4 subjects x 2 sessions) and monkey IT "
                "RDMs, behavioural and model RDMs (copies distributed with rsatoolbox)",
    license="MIT (rsatoolbox); images for research use",
    citation="Kriegeskorte N et al. (2008). Matching categorical object representations in inferior temporal "
             "cortex of man and monkey. Neuron 60:1126-1141.",
)

CICHY_ALGONAUTS = DatasetSpec.from_manifest(
    "cichy92_algonauts2019_78", Path(__file__).resolve().parent / "cichy92_algonauts2019_78.tsv",
    description="15-subject fMRI RDMs of EVC and IT for the Cichy 92 images (Kriegeskorte order) and the "
                "Algonauts-2019 78 images, with the images (Net2Brain-App copies)",
    license="MIT (app); Algonauts 2019 / Cichy lab terms, research use",
    citation="Cichy RM, Pantazis D, Oliva A (2014). Resolving human object recognition in space and time. Nature "
             "Neuroscience 17:455-462. Cichy RM, Roig G, Andonian A, et al. (2019). The Algonauts Project: a "
             "platform for communication between the sciences of biological and artificial intelligence. "
             "arXiv:1905.05675.")

BIBTEX_CICHY2014 = """@article{cichy2014resolving,
  title={Resolving human object recognition in space and time},
  author={Cichy, Radoslaw Martin and Pantazis, Dimitrios and Oliva, Aude},
  journal={Nature Neuroscience}, volume={17}, number={3}, pages={455--462}, year={2014}
}"""

BIBTEX_ALGONAUTS2019 = """@article{cichy2019algonauts,
  title={The Algonauts Project: A Platform for Communication between the Sciences of Biological and Artificial
         Intelligence},
  author={Cichy, Radoslaw Martin and Roig, Gemma and Andonian, Alex and Dwivedi, Kshitij and Lahner, Benjamin and
          Lascelles, Alex and Mohsenzadeh, Yalda and Ramakrishnan, Kandan and Oliva, Aude},
  journal={arXiv preprint arXiv:1905.05675}, year={2019}
}"""

BIBTEX_KRIEGESKORTE2008 = """@article{kriegeskorte2008matching,
  title={Matching categorical object representations in inferior temporal cortex of man and monkey},
  author={Kriegeskorte, Nikolaus and Mur, Marieke and Ruff, Douglas A and Kiani, Roozbeh and Bodurka, Jerzy
          and Esteky, Hossein and Tanaka, Keiji and Bandettini, Peter A},
  journal={Neuron}, volume={60}, number={6}, pages={1126--1141}, year={2008}
}"""


def _kriegeskorte(region_loader: str, identifier: str, ceiling: str):
    def factory(**options):
        from . import kriegeskorte2008 as k
        from .rdm_benchmark import RDMBenchmark

        return RDMBenchmark(identifier=identifier, version=VERSION, stimuli=k.stimuli,
                            brain=getattr(k, region_loader), ceiling=ceiling, **options)

    return factory


def _cichy_algonauts(image_set: str, region: str | None, identifier: str, ceiling: str):
    """One region, or both (``region=None``) in one multi-region benchmark."""
    def factory(**options):
        from functools import partial

        from . import cichy_algonauts as c
        from .rdm_benchmark import RDMBenchmark

        brain = partial(c.rdms, image_set, region) if region else partial(c.all_regions, image_set)
        return RDMBenchmark(identifier=identifier, version=VERSION, stimuli=partial(c.stimuli, image_set),
                            brain=brain, ceiling=ceiling, **options)

    return factory


def _cichy_algonauts_specs() -> list[BenchmarkSpec]:
    specs = []
    for parent, image_set, ceiling, bibtex, what in (
            ("cichy2014", "92images", "loso", BIBTEX_CICHY2014, "92 objects (Kriegeskorte order)"),
            ("algonauts2019", "78images", "report", BIBTEX_ALGONAUTS2019,
             "78 Algonauts-2019 images (barely reliable: LOSO ceiling ~0.01, reported, not divided by)")):
        for region in ("EVC", "IT", None):
            identifier = f"{parent}.{region.lower()}-rsa" if region else f"{parent}.rsa"
            datasets = (CICHY_ALGONAUTS.identifier,) + (("rsa92_kriegeskorte2008",) if image_set == "92images" else ())
            regions = f"{region} fMRI RDMs" if region else "EVC and IT fMRI RDMs (both regions, brain-to-brain)"
            specs.append(BenchmarkSpec(
                identifier=identifier, factory=_cichy_algonauts(image_set, region, identifier, ceiling),
                description=f"{what}, 15 subjects' {regions}: Spearman RSA, best layer chosen on held-out "
                            "stimulus halves" + (", leave-one-subject-out ceiling" if ceiling == "loso" else ""),
                version=VERSION, citation=CICHY_ALGONAUTS.citation, bibtex=bibtex, parent=parent, metric="rsa",
                datasets=datasets, modalities=("image",)))
    return specs


@hookimpl
def cortexbench_benchmarks():
    common = dict(version=VERSION, citation=KRIEGESKORTE2008.citation, bibtex=BIBTEX_KRIEGESKORTE2008,
                  parent="kriegeskorte2008", metric="rsa", datasets=("rsa92_kriegeskorte2008",),
                  modalities=("image",))
    return [
        BenchmarkSpec(identifier="kriegeskorte2008.hit-rsa",
                      factory=_kriegeskorte("human_it", "kriegeskorte2008.hit-rsa", "loso"),
                      description="92 objects, human IT fMRI RDMs (4 subjects): Spearman RSA, best layer chosen on "
                                  "held-out stimulus halves, leave-one-subject-out ceiling", **common),
        BenchmarkSpec(identifier="kriegeskorte2008.mit-rsa",
                      factory=_kriegeskorte("monkey_it", "kriegeskorte2008.mit-rsa", "none"),
                      description="92 objects, monkey IT single-unit RDM (674 neurons): Spearman RSA, uncieled",
                      **common),
        *_cichy_algonauts_specs(),
    ]


@hookimpl
def cortexbench_datasets():
    return [KRIEGESKORTE2008, CICHY_ALGONAUTS]
