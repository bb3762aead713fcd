"""Hook implementations: cheap metadata only; heavy work happens inside the factories."""
from cortexbench.data import DatasetSpec, FileSpec
from cortexbench.hookspecs import hookimpl
from cortexbench.interfaces import BenchmarkSpec, ModelSpec

ANIMACY = DatasetSpec(
    identifier="example_animacy_rdm",
    folder="rsa92_kriegeskorte2008",  # where mirrors keep it (shared with the built-in Kriegeskorte dataset)
    files=(FileSpec("92_modelRDMs.mat", "e1d2b58bb2f9508bc13da4c81b94d1ab07823b25ed30b9563bd9d6d730c2a00a", 333004,
                    "https://raw.githubusercontent.com/rsagroup/rsatoolbox/f1f83cadb7243492a1aae7460466e0f0140b20ac/"
                    "demos/92imageData/92_modelRDMs.mat"),),
    description="model RDMs for the Kriegeskorte 92 images (animacy, categories, HMAX, ...)",
    license="MIT (rsatoolbox)",
)


def _model(**options):
    from .model import PixelModel

    return PixelModel(**options)


def _benchmark(**options):
    from .benchmark import AnimacyRSA

    return AnimacyRSA(**options)


@hookimpl
def cortexbench_models():
    return [ModelSpec("example/pixels", _model, "raw pixels (32x32 and 8x8 grey levels); a baseline",
                      modalities=("image",), family="example", trained=False)]


@hookimpl
def cortexbench_benchmarks():
    return [BenchmarkSpec("example.kriegeskorte2008-animacy", _benchmark,
                          "Spearman RSA with the binary animacy RDM of the 92 Kriegeskorte images", version="1",
                          citation="Kriegeskorte N et al. (2008). Neuron 60:1126-1141.", metric="rsa",
                          parent="kriegeskorte2008", datasets=("example_animacy_rdm", "rsa92_kriegeskorte2008"))]


@hookimpl
def cortexbench_datasets():
    return [ANIMACY]
