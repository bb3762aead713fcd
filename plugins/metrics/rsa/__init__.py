"""RSA metric plugin: RDMs (correlation or Euclidean distance) compared by Spearman, Pearson or Kendall's tau-a."""
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import MetricSpec

VERSION = "1"


def _build(**options):
    from .metric import RSA

    return RSA(**options)


@hookimpl
def cortexbench_metrics():
    return [MetricSpec(
        identifier="rsa",
        factory=_build,
        description="representational similarity: RDM (1 - Pearson r or Euclidean, optionally on z-scored features) "
                    "compared by Spearman, Pearson or Kendall's tau-a",
        version=VERSION,
        citation="Kriegeskorte N, Mur M, Bandettini P (2008). Representational similarity analysis. "
                 "Front Syst Neurosci 2:4.",
    )]


@hookimpl
def cortexbench_datasets():
    from .reference_data import NET2BRAIN_REFERENCE

    return [NET2BRAIN_REFERENCE]
