"""Bad benchmark options get clear errors naming the option."""
import pytest

from cortexbench.errors import InputError
from cortexbench.plugin_manager import get_plugin_manager
from cortexbench.scorer import score


@pytest.mark.parametrize("options, message", [
    ({"transforms": ["full", "sparse"]}, "transforms must be among"),
    ({"transforms": ["diagonal"]}, "headline_transform 'full' is not among"),
    ({"n_train": [4]}, "n_train"),
    ({"seeds": []}, "at least one seed"),
    ({"pool": ["things/vice-42d", "things/vice-42d"]}, "lists a model twice"),
])
def test_recovery_options_are_checked(options, message):
    with pytest.raises(InputError, match=message):
        get_plugin_manager().create_benchmark("things.recovery", **options)


def test_probe_options_are_checked():
    with pytest.raises(InputError, match="lambdas"):
        get_plugin_manager().create_benchmark("things.oddoneout-full", lambdas=[-1.0])


def test_pool_of_one_and_missing_images_are_explained(registry, tmp_path):
    with pytest.raises(InputError, match="pool needs at least one model besides"):
        score("things/vice-42d", "things.recovery", registry=registry, device="cpu", progress=False,
              benchmark_options={"pool": ["things/vice-42d"], "n_train": [16], "seeds": 1})
    with pytest.raises(InputError, match="THINGS image folder .* does not exist"):
        score("things/vice-42d", "things.oddoneout-zeroshot", registry=registry, device="cpu", progress=False,
              benchmark_options={"images": str(tmp_path / "nowhere")})
    with pytest.raises(InputError, match="generators .* are not in the candidate pool"):
        score("things/vice-42d", "things.recovery", registry=registry, device="cpu", progress=False,
              benchmark_options={"generators": ["things/spose-82d"], "pool": ["things/spose-14d"], "n_train": [16],
                                 "seeds": 1})
