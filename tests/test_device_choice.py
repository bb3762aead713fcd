"""Device and precision requests: malformed or impossible ones are refused with the flag and the fix named."""
import pytest

from cortexbench.device import resolve_device, resolve_precision
from cortexbench.errors import InputError


@pytest.mark.parametrize("request_", ["cuda:abc", "cuda:", "cuda:0:1", "cuda1"])
def test_malformed_cuda_devices_are_refused_before_any_gpu_lookup(request_):
    with pytest.raises(InputError, match="--device"):
        resolve_device(request_)


def test_bf16_is_refused_where_it_would_silently_run_fp32():
    with pytest.raises(InputError, match="--precision bf16 needs a CUDA device"):
        resolve_precision("bf16", "cpu")
    assert resolve_precision("bf16", "cuda:0") == "bf16"
    assert resolve_precision("auto", "cpu") == "fp32" and resolve_precision("auto", "cuda:1") == "bf16"
