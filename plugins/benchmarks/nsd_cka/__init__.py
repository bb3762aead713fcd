"""NSD representational alignment with RBF CKA (Shen et al. 2025), on the dataset's published layouts.

* ``nsd.rbf-cka``: native NSD (func1pt8mm betas, HCP-MMP1 180 regions); data root from ``root=`` or
  ``$CORTEXBENCH_NSD_ROOT``.
* ``nsd.algonauts2023.rbf-cka``: the Algonauts-2023 challenge layout (fsaverage, ROI masks); ``root=`` or
  ``$CORTEXBENCH_ALGONAUTS2023_ROOT``.
* ``nsd.algonauts2023-sample.rbf-cka``: the 20-image real sample of subject 1 (declared data; a pipeline check, too
  small for a scientific score).
"""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec

from .data import ALGONAUTS2023_SAMPLE, NSD_CITATION, SHARED1000

VERSION = "2"
SHEN2025 = ("Shen G, Zhao D, Dong Y, Zhang Q, Zeng Y (2025). Alignment between brains and AI: evidence for convergent "
            "evolution across modalities, scales and training trajectories. arXiv:2507.01966.")
BIBTEX = """@article{shen2025alignment,
  title={Alignment between Brains and AI: Evidence for Convergent Evolution across Modalities, Scales and Training
         Trajectories},
  author={Shen, Guobin and Zhao, Dongcheng and Dong, Yiting and Zhang, Qian and Zeng, Yi},
  journal={arXiv preprint arXiv:2507.01966}, year={2025}
}"""


def _factory(identifier: str, layout: str):
    def factory(**options):
        from .benchmark import NSDCKABenchmark

        return NSDCKABenchmark(identifier=identifier, version=VERSION, layout=layout, **options)

    return factory


@hookimpl
def cortexbench_benchmarks():
    common = dict(version=VERSION, citation=f"{SHEN2025} {NSD_CITATION}", bibtex=BIBTEX, parent="nsd",
                  metric="rbf-cka", plot="cortexbench.plugins.benchmarks.nsd_cka.analysis:plot_depth_bins")
    return [
        BenchmarkSpec(identifier="nsd.rbf-cka", factory=_factory("nsd.rbf-cka", "native"),
                      description="NSD subjects 1/2/5/7, 180 HCP-MMP1 regions (native func1pt8mm betas; root= or "
                                  "$CORTEXBENCH_NSD_ROOT): RBF CKA of pooled layers (images) or caption embeddings "
                                  "(text), sigma 12..100; score = top-5% regions at depth bin 6, sigma 36",
                      modalities=("image", "text"), **common),
        BenchmarkSpec(identifier="nsd.algonauts2023.rbf-cka", factory=_factory("nsd.algonauts2023.rbf-cka",
                                                                               "algonauts2023"),
                      description="NSD in the Algonauts-2023 challenge layout (fsaverage, ROI masks or HCP-MMP1 with "
                                  "hcp_atlas=; root= or $CORTEXBENCH_ALGONAUTS2023_ROOT), same protocol",
                      datasets=(SHARED1000.identifier,), modalities=("image", "text"), **common),
        BenchmarkSpec(identifier="nsd.algonauts2023-sample.rbf-cka",
                      factory=_factory("nsd.algonauts2023-sample.rbf-cka", "algonauts2023-sample"),
                      description="20 real Algonauts-2023 subj01 images, ROI regions: a pipeline check on real "
                                  "responses, too small for a scientific score (no ceiling)",
                      datasets=(ALGONAUTS2023_SAMPLE.identifier,), modalities=("image",), **common),
    ]


@hookimpl
def cortexbench_datasets():
    return [SHARED1000, ALGONAUTS2023_SAMPLE]
