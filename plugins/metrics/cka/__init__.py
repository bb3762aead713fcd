"""CKA metric plugin: linear and RBF centred kernel alignment, biased or debiased, batched over many pairs."""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import MetricSpec

VERSION = "1"

KORNBLITH2019 = ("Kornblith S, Norouzi M, Lee H, Hinton G (2019). Similarity of neural network representations "
                 "revisited. ICML.")
SHEN2025 = "Shen G et al. (2025). Alignment between brains and AI: evidence for convergent evolution. arXiv:2507.01966."


def _linear(**options):
    from .metric import CKA

    return CKA(kernel="linear", **options)


def _rbf(**options):
    from .metric import CKA

    return CKA(kernel="rbf", **options)


@hookimpl
def cortexbench_metrics():
    return [
        MetricSpec(identifier="cka", factory=_linear, version=VERSION, citation=KORNBLITH2019,
                   description="linear centred kernel alignment (option debiased=True: unbiased HSIC, Song et al. "
                               "2012)"),
        MetricSpec(identifier="rbf-cka", factory=_rbf, version=VERSION, citation=f"{KORNBLITH2019} {SHEN2025}",
                   description="RBF-kernel CKA over a sigma grid on column-z-scored features (Shen et al.; default "
                               "sigma 12..100), or sigma = threshold x median distance (Kornblith et al.)"),
    ]
