"""The torch extraction loop: device-side normalization, early stop, in-place safety, batching, video averaging."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cortexbench.activations import CachedCandidate
from cortexbench.errors import InputError
from cortexbench.extraction import Preprocessing, TorchImageModel, extract_all
from cortexbench.interfaces import make_layers
from cortexbench.pooling import pool
from cortexbench.stimuli import StimulusSet
from cortexbench.video import VideoSampling, decode_video


class Counting(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x):
        self.calls += 1
        return self.module(x)


def tiny_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.ReLU(inplace=True),  # rewrites layer "2"'s output in place
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), Counting(torch.nn.Linear(6, 5))).eval()


LAYERS = make_layers(["0", "2", "6"], ["NCHW", "NCHW", "NC"])
PREP = Preprocessing(input_size=20, resize="crop", crop_pct=0.8, interpolation="bicubic", mean=(0.4, 0.5, 0.6),
                     std=(0.2, 0.25, 0.3))


def tiny_model(**kwargs) -> TorchImageModel:
    network = tiny_network()
    return TorchImageModel("tiny", lambda: network, LAYERS, PREP, "test", **kwargs)


def images(n=5) -> StimulusSet:
    rng = np.random.default_rng(0)
    return StimulusSet.from_arrays("imgs", [rng.integers(0, 255, (30 + 3 * i, 40, 3), dtype=np.uint8)
                                            for i in range(n)], [f"s{i}" for i in range(n)])


def reference_outputs(model: TorchImageModel, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """The plain way: torchvision's CPU transform already applied, forward hooks that copy."""
    captured = {}
    network = model.network()
    handles = [dict(network.named_modules())[name].register_forward_hook(
        lambda _m, _i, out, name=name: captured.__setitem__(name, out.clone())) for name in ("0", "2", "6")]
    with torch.inference_mode():
        network(batch)
    for handle in handles:
        handle.remove()
    return captured


def test_matches_torchvision_pipeline_and_keeps_pre_inplace_values():
    model, stimuli = tiny_model(), images()
    transform = PREP.transform()
    batch = torch.stack([transform(stimuli.load(i)) for i in range(len(stimuli))])
    expected = reference_outputs(model, batch)
    for pooling in ("avg", "flatten"):
        got = extract_all(model, stimuli, ["0", "2", "6"], pooling=pooling, batch_size=2)
        for name, layer in zip(("0", "2", "6"), LAYERS):
            np.testing.assert_allclose(got[name], pool(expected[name], layer.layout, pooling).numpy(),
                                       rtol=1e-5, atol=1e-5)
    flat = extract_all(model, stimuli, ["2"], pooling="flatten")["2"]
    assert (flat < 0).any()  # the conv output before the in-place ReLU, not after it


def test_forward_stops_after_the_deepest_requested_layer():
    model, stimuli = tiny_model(), images(4)
    counter = model.network()[6]
    extract_all(model, stimuli, ["0", "2"], batch_size=2)
    assert counter.calls == 0
    extract_all(model, stimuli, ["6"], batch_size=2)
    assert counter.calls == 2


def test_batch_size_does_not_change_results():
    model, stimuli = tiny_model(), images(7)
    one = extract_all(model, stimuli, ["2", "6"], batch_size=1)
    many = extract_all(model, stimuli, ["2", "6"], batch_size=3)
    starts = [b.start for b in model.iter_activations(stimuli, ["6"], batch_size=3)]
    assert starts == [0, 3, 6]
    for name in one:
        np.testing.assert_allclose(one[name], many[name], rtol=1e-6, atol=1e-6)


def write_clips(folder, n=3, frames=12, rate=8):
    import av

    rng = np.random.default_rng(5)
    paths = []
    for clip in range(n):
        path = folder / f"clip{clip}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
            for _ in range(frames):
                frame = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        paths.append(path)
    return StimulusSet.from_files("clips", paths, modality="video")


@pytest.mark.parametrize("frames", ["preprocess", "direct"])
def test_video_layers_are_pooled_per_frame_then_averaged_over_time(tmp_path, frames):
    from PIL import Image

    sampling = VideoSampling(fps=4, size=24, n_frames=6, frames=frames)
    model, clips = tiny_model(video=sampling), write_clips(tmp_path)
    transform = PREP.transform()
    for pooling in ("avg", "flatten"):
        got = extract_all(model, clips, ["0", "2", "6"], pooling=pooling, batch_size=12)  # two clips a batch
        for index in range(len(clips)):
            decoded = decode_video(clips.items[index], fps=4, size=24, n_frames=6)
            if frames == "preprocess":
                batch = torch.stack([transform(Image.fromarray(f)) for f in decoded])
            else:  # whole decoded frames, only normalized
                batch = (torch.from_numpy(decoded).float() / 255 - torch.tensor(PREP.mean)) / torch.tensor(PREP.std)
                batch = batch.permute(0, 3, 1, 2)
            expected = reference_outputs(model, batch)
            for name, layer in zip(("0", "2", "6"), LAYERS):
                per_frame = pool(expected[name], layer.layout, pooling).numpy()
                np.testing.assert_allclose(got[name][index], per_frame.mean(0), rtol=1e-4, atol=1e-5)


def test_cached_candidate_streams_video(tmp_path):
    model, clips = tiny_model(video=VideoSampling(fps=4, size=24, n_frames=6)), write_clips(tmp_path, n=2)
    acts = CachedCandidate(model, batch_size=6).activations(clips, ["2"], pooling="flatten")
    assert acts["2"].shape == (2, 6 * 9 * 9)  # 20 px input, 3x3 conv at stride 2: 9 x 9 maps


def test_wrong_modality_and_layer_are_clear_errors():
    model = TorchImageModel("tiny", tiny_network, LAYERS, PREP, "test", modalities=frozenset({"image"}))
    with pytest.raises(InputError, match="accepts"):
        extract_all(model, StimulusSet.from_texts("t", ["a"]), ["0"])
    with pytest.raises(InputError, match="no layer 'nope'"):
        extract_all(model, images(1), ["nope"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision 0.29 flags its image I/O for TorchCodec
def test_decoding_on_the_device_matches_the_worker_path(tmp_path):
    """decode='device' (JPEG bytes decoded and resized by torchvision where the network runs; here the CPU)
    gives nearly the same network input as Pillow in the workers, and layers close to it."""
    from PIL import Image

    rng = np.random.default_rng(3)
    paths = []
    for i, shape in enumerate([(60, 80), (60, 80), (45, 50)]):  # two of one size: resized as one group
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        path = tmp_path / f"img{i}.jpg"
        Image.fromarray(small).resize(shape[::-1], Image.BICUBIC).save(path, quality=95)
        paths.append(path)
    stimuli = StimulusSet.from_files("jpegs", paths)
    workers, device = tiny_model(), tiny_model(decode="device")
    assert device.fingerprint()["decode"] == "device" and "decode" not in workers.fingerprint()
    from torchvision.io import read_file

    on_device = device.prepare([read_file(str(p)) for p in paths], "cpu")
    transform = PREP.transform()
    reference = torch.stack([transform(stimuli.load(i)) for i in range(3)])
    difference = (on_device - reference).abs()
    assert on_device.shape == reference.shape and difference.mean() < 0.02 and difference.max() < 0.5
    a = extract_all(workers, stimuli, ["2"])["2"]
    b = extract_all(device, stimuli, ["2"], batch_size=2)["2"]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999
    with pytest.raises(InputError, match="JPEG files only"):
        extract_all(device, images(1), ["2"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_split_route_equals_the_device_route_and_takes_any_image(tmp_path):
    """decode='split' (the workers decode full-size pixels, the device resizes) gives exactly the activations of
    decode='device' on the CPU (same decoder, libjpeg-turbo's exact integer IDCT, on 4:2:0, 4:4:4, progressive and
    greyscale files; same resize), and its decoded pixels equal Pillow's. Batches of mixed sizes keep file order,
    through worker processes too (the batch buffer is born in shared memory); PNG and other files and in-memory
    arrays, which the encoded routes refuse, go through it."""
    from PIL import Image

    from cortexbench import extraction
    from cortexbench.extraction import DecodedBatch

    kinds = [(60, 80, "RGB", 2, False), (45, 50, "RGB", 0, False), (60, 80, "RGB", 2, True), (70, 40, "L", 2, False),
             (45, 50, "RGB", 2, False)]
    stimuli = StimulusSet.from_files("jpegs", _jpeg_files(tmp_path, kinds))
    device_route, split = tiny_model(decode="device"), tiny_model(decode="split")
    assert split.fingerprint()["decode"] == "split"
    expected = extract_all(device_route, stimuli, ["0", "2"], batch_size=2)
    for workers in (0, 2):
        split.num_workers = workers
        got = extract_all(split, stimuli, ["0", "2"], batch_size=2)
        for layer in ("0", "2"):
            np.testing.assert_array_equal(got[layer], expected[layer])
    for i in range(len(stimuli)):
        np.testing.assert_array_equal(extraction._decoded_pixels(stimuli, i), np.asarray(stimuli.load(i)))
    arrays = images(4)
    files = []
    for i, array in enumerate(arrays.items):
        files.append(tmp_path / f"p{i}.{('png', 'bmp')[i % 2]}")                # torchvision's PNG path; Pillow's
        Image.fromarray(array).save(files[-1])
    from_arrays = extract_all(split, arrays, ["2"], batch_size=3)["2"]
    np.testing.assert_array_equal(extract_all(split, StimulusSet.from_files("files", files), ["2"],
                                              batch_size=3)["2"], from_arrays)
    batch = DecodedBatch.collate(list(arrays.items[:2]))
    assert batch.shapes.tolist() == [[30, 40], [33, 40]] and batch.data.numel() == (30 + 33) * 40 * 3
    for view, array in zip(batch.pixels("cpu"), arrays.items[:2]):
        np.testing.assert_array_equal(view.permute(1, 2, 0).numpy(), array)
    same = DecodedBatch.collate([arrays.items[1], arrays.items[1][::-1]]).pixels("cpu")   # one size: one view
    assert same.shape == (2, 3, 33, 40)
    np.testing.assert_array_equal(same[1].permute(1, 2, 0).numpy(), arrays.items[1][::-1])
    source = torch.from_numpy(np.random.default_rng(1).integers(0, 255, 5 * (1 << 20) + 7, dtype=np.uint8))
    with torch.inference_mode():                                   # as in the decode thread: an inference tensor
        target = torch.empty_like(source)
    torch.testing.assert_close(extraction._parallel_copy(target, source), source, rtol=0, atol=0)
    pair = stimuli.subset([0, 2])                                   # two 60 x 80 files: the one-view batch path
    np.testing.assert_array_equal(extract_all(split, pair, ["2"], batch_size=2)["2"], expected["2"][[0, 2]])


@pytest.mark.parametrize("prep", [Preprocessing(resize="direct"),
                                  Preprocessing(resize="crop", crop_pct=0.875, interpolation="bicubic"),
                                  Preprocessing(resize="crop", crop_pct=0.95),
                                  Preprocessing(resize="crop", crop_pct=0.9, crop_mode="squash")])
def test_matrix_resize_equals_torch_antialiased_interpolation(prep):
    """The device route's resize (two matrix products) reproduces torchvision's float resize to rounding."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    rng = np.random.default_rng(0)
    mode = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[prep.interpolation]
    for shape in [(3, 425, 425), (3, 300, 517), (3, 517, 300)]:
        images = [torch.from_numpy(rng.integers(0, 255, shape, dtype=np.uint8)) for _ in range(3)]
        got = prep.resize_tensors(images)
        batch = torch.stack(images).double()
        if prep.resize == "direct":
            ref = TF.resize(batch, [prep.input_size] * 2, interpolation=mode, antialias=True)
        else:
            scale = math.floor(prep.input_size / prep.crop_pct)   # timm's rule
            ref = TF.resize(batch, [scale] if prep.crop_mode == "center" else [scale, scale], interpolation=mode,
                            antialias=True)
            ref = TF.center_crop(ref, [prep.input_size] * 2)
        difference = (got.int() - ref.round().clamp(0, 255).int()).abs()
        assert got.shape == (3, 3, prep.input_size, prep.input_size)
        assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-4   # float32 rounding at .5 only
        torch.testing.assert_close(prep.resize_tensors(torch.stack(images)), got, rtol=0, atol=0)  # one batch
    small, large, medium = (torch.from_numpy(rng.integers(0, 255, (3, h, 90), dtype=np.uint8)) for h in (70, 120, 95))
    mixed = prep.resize_tensors([small, large, medium, small.flip(1)])             # sizes interleaved: order kept
    alone = [prep.resize_tensors([image])[0] for image in (small, large, medium, small.flip(1))]
    torch.testing.assert_close(mixed, torch.stack(alone), rtol=0, atol=0)


class _SoftwareJPEGDecoder:
    """Stands in for nvImageCodec on the CPU: the same call (a batch of encoded numpy buffers, parameters, a CUDA
    stream handle) and the same result (one ``(H, W, 3)`` uint8 array per file, None where a file fails)."""

    def __init__(self):
        self.calls = []

    def decode(self, sources, images=None, params=None, cuda_stream=0):
        from torchvision.io import ImageReadMode, decode_jpeg

        self.calls.append((len(sources), params, cuda_stream, images is not None))
        out = []
        for source in sources:
            assert isinstance(source, np.ndarray) and source.dtype == np.uint8
            try:
                out.append(decode_jpeg(torch.from_numpy(source.copy()), mode=ImageReadMode.RGB).permute(1, 2, 0)
                           .numpy())
            except RuntimeError:
                out.append(None)
        return out


def _jpeg_files(folder, kinds) -> list:
    """Small JPEG files of the given ``(height, width, Pillow mode, chroma subsampling, progressive)``."""
    from PIL import Image

    rng = np.random.default_rng(5)
    paths = []
    for i, (height, width, mode, subsampling, progressive) in enumerate(kinds):
        small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).convert(mode)
        path = folder / f"img{i}.jpg"
        small.resize((width, height), Image.BICUBIC).save(path, quality=90, subsampling=subsampling,
                                                          progressive=progressive)
        paths.append(path)
    return paths


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hardware_decode_route_hands_over_like_the_device_route(tmp_path, monkeypatch):
    """decode='nvjpg' with a software decoder behind nvImageCodec's interface (no wheel needed) gives exactly the
    activations of decode='device' (same JPEG decoder, same resize), in file order across batches of mixed sizes;
    its own fingerprint; a clear error for a file the decoder cannot read."""
    from cortexbench import extraction
    from cortexbench.errors import DataError

    paths = _jpeg_files(tmp_path, [(60, 80, "RGB", 2, False), (45, 50, "RGB", 2, False), (60, 80, "RGB", 2, False),
                                   (70, 40, "RGB", 2, False), (45, 50, "RGB", 2, False)])
    stimuli = StimulusSet.from_files("jpegs", paths)
    device_route, hardware = tiny_model(decode="device"), tiny_model(decode="nvjpg")
    assert hardware.fingerprint()["decode"] == "nvjpg" != device_route.fingerprint()["decode"]
    fake = _SoftwareJPEGDecoder()
    monkeypatch.setattr(extraction, "nvjpg_decoder", lambda device: (fake, "params"))
    expected = extract_all(device_route, stimuli, ["0", "2"], batch_size=2)
    got = extract_all(hardware, stimuli, ["0", "2"], batch_size=2)
    for layer in ("0", "2"):
        np.testing.assert_array_equal(got[layer], expected[layer])
    assert [c[0] for c in fake.calls] == [2, 2, 1] and all(c[1:3] == ("params", 0) for c in fake.calls)
    assert [c[3] for c in fake.calls] == [False, True, False]   # a batch of the same size reuses the last images
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(paths[0].read_bytes()[:40])
    with pytest.raises(DataError, match="could not decode 1 of the 2 JPEG files"):
        extract_all(hardware, StimulusSet.from_files("broken", [paths[1], broken]), ["2"])


def test_hardware_decode_route_errors_name_the_fix(tmp_path, monkeypatch):
    """Clear errors: a device that is neither CUDA nor the CPU, CUDA asked for where there is none, the optional
    wheel missing (pip install 'cortexbench[nvjpg]'), an unknown route."""
    import sys

    from cortexbench import extraction

    stimuli = StimulusSet.from_files("jpegs", _jpeg_files(tmp_path, [(20, 30, "RGB", 2, False)]))
    with pytest.raises(InputError, match="device is 'mps'.*decode='device'"):
        extraction.nvjpg_decoder("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="device is 'cuda:0' and CUDA is not available"):
        extraction.nvjpg_decoder("cuda:0")
    monkeypatch.setitem(sys.modules, "nvidia", None)                   # as if the wheel were not installed
    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", None)
    extraction._nvimgcodec_decoder.cache_clear()
    with pytest.raises(InputError, match=r"needs NVIDIA nvImageCodec: pip install 'cortexbench\[nvjpg\]'"):
        extract_all(tiny_model(decode="nvjpg"), stimuli, ["2"])
    with pytest.raises(InputError, match="decode must be one of"):
        extract_all(tiny_model(decode="gpu"), stimuli, ["2"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hardware_decode_route_with_nvimagecodec_cpu_backend_equals_device_route(tmp_path):
    """The real nvImageCodec (a test dependency) on its CPU backend: decode='nvjpg' gives bit-identical pixels and
    activations to decode='device' (torchvision). Both decode with libjpeg-turbo's accurate integer IDCT and fancy
    chroma upsampling, which are exact integer arithmetic, so the tolerance is zero (on the GPU the engines differ
    from libjpeg-turbo by at most 1 per pixel: docs/benchmarks.md). Covers 4:4:4, 4:2:2, 4:2:0, greyscale,
    progressive and odd sizes, batches of mixed sizes that reuse the previous batch's images, and a broken file."""
    pytest.importorskip("nvidia.nvimgcodec")
    from torchvision.io import ImageReadMode, decode_jpeg

    from cortexbench import extraction
    from cortexbench.errors import DataError

    paths = _jpeg_files(tmp_path, [(60, 80, "RGB", 0, False), (45, 51, "RGB", 1, False), (61, 79, "RGB", 2, False),
                                   (37, 40, "L", 2, False), (70, 40, "RGB", 2, True), (45, 51, "RGB", 2, False),
                                   (33, 47, "RGB", 2, True)])
    blobs = [path.read_bytes() for path in paths]
    decoded = extraction._decode_nvjpg(extraction.EncodedBatch.collate(blobs), "cpu")
    for blob, image in zip(blobs, decoded):
        reference = decode_jpeg(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=ImageReadMode.RGB)
        assert image.dtype == torch.uint8 and image.shape == reference.shape
        torch.testing.assert_close(image, reference, rtol=0, atol=0)
    stimuli = StimulusSet.from_files("jpegs", paths)
    expected = extract_all(tiny_model(decode="device"), stimuli, ["0", "2", "6"], batch_size=3)
    got = extract_all(tiny_model(decode="nvjpg"), stimuli, ["0", "2", "6"], batch_size=3)  # batches 3, 3, 1
    for layer in ("0", "2", "6"):
        np.testing.assert_array_equal(got[layer], expected[layer])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(blobs[0][:40])
    with pytest.raises(DataError, match="could not decode 1 of the 2 JPEG files"):
        extract_all(tiny_model(decode="nvjpg"), StimulusSet.from_files("broken", [paths[1], broken]), ["2"])
