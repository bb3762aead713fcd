"""RSA against a category model RDM, built from cortexbench's public pieces."""
from __future__ import annotations

import numpy as np
import scipy.io
import torch
import xarray as xr

from cortexbench import assembly
from cortexbench.data import resolve
from cortexbench.plugins.benchmarks.classic_rsa.kriegeskorte2008 import stimuli
from cortexbench.plugins.metrics.rsa import VERSION as RSA_VERSION
from cortexbench.plugins.metrics.rsa import functional as F

from . import ANIMACY


class AnimacyRSA:
    identifier = "example.kriegeskorte2008-animacy"
    version = "1"
    metric = "rsa"

    def __init__(self, n_bootstrap: int = 200, seed: int = 0):
        self.n_bootstrap, self.seed = n_bootstrap, seed

    def _animacy(self) -> torch.Tensor:
        models = scipy.io.loadmat(resolve(ANIMACY, "92_modelRDMs.mat"))["Models"][0]
        rdm = next(m["RDM"] for m in models if str(m["name"][0]) == "animacy")
        return torch.as_tensor(np.asarray(rdm, dtype=np.float64))

    def __call__(self, candidate):
        images = stimuli()
        names = [layer.name for layer in candidate.layers]
        features = candidate.activations(images, names)
        model_rdms = torch.stack([F.rdm(torch.tensor(np.asarray(features[n].values), dtype=torch.float64))
                                  for n in names])
        target = self._animacy()
        raw = F.compare(F.upper(model_rdms), F.upper(target)[None]).numpy()[:, 0]
        best = int(np.argmax(raw))
        samples = F.bootstrap_samples(len(images), self.n_bootstrap, self.seed)
        boot = F.bootstrap_rsa(model_rdms[best], target[None], samples, ceiled=False).numpy()
        return assembly.make(
            score=raw[best], score_error=boot.std(ddof=1), ceiling=float("nan"),
            raw=xr.DataArray(raw, dims="layer", coords={"layer": names}),
            attrs={"model": candidate.identifier, "benchmark": self.identifier, "benchmark_version": self.version,
                   "metric": "rsa", "metric_version": RSA_VERSION,
                   "ceiling_method": "none: the target is a noiseless category model",
                   "error_method": f"bootstrap over stimuli ({self.n_bootstrap} resamples), SD at the best layer",
                   "summary": f"best layer {names[best]} (chosen on all stimuli: an example, not a fair benchmark)"})
