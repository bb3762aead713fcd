"""RSA metric plugin: RDMs (correlation or Euclidean distance) compared by Spearman or Pearson correlation."""
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
        description="representational similarity: RDM (1 - Pearson r or Euclidean) compared by Spearman or Pearson r",
        version=VERSION,
        citation="Kriegeskorte N, Mur M, Bandettini P (2008). Representational similarity analysis. "
                 "Front Syst Neurosci 2:4.",
    )]
