"""Ridge encoding metric plugin: cross-validated ridge regression (Hoefling et al.'s protocol) on many targets."""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import MetricSpec

VERSION = "1"


def _build(**options):
    from .metric import RidgeEncoding

    return RidgeEncoding(**options)


@hookimpl
def cortexbench_metrics():
    return [MetricSpec(
        identifier="ridge",
        factory=_build,
        description="cross-validated ridge encoding: z-scored features and responses, 5 shuffled folds, alpha from "
                    "logspace(0, 9, 19) by efficient leave-one-out; per-target R^2 and Pearson r",
        version=VERSION,
        citation="Hoefling L et al. (2026). Only brains align with brains: cross-region alignment patterns expose "
                 "limits of normative models. ICLR. arXiv:2604.21780.",
    )]
