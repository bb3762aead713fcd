"""Batched activation extraction for PyTorch image (and video) networks.

One loop serves every torch model. What keeps a GPU busy:

* decoding and resizing in DataLoader worker processes, which hand over uint8 ``(H, W, 3)`` arrays (4x less to
  pin and copy than float); scaling and normalization run on the device, where ``permute`` of the stacked
  ``(B, H, W, 3)`` batch is already a channels-last ``NCHW`` tensor;
* ``torch.inference_mode``, channels-last weights and bf16 autocast on CUDA, cuDNN autotuning;
* forward hooks that pool on the device (averages accumulated in float32) and a forward pass that stops right
  after the deepest requested layer;
* one device-side concatenation of all requested layers per batch and one asynchronous copy into pinned host
  memory; batch ``k`` is handed to the caller only after batch ``k + 1`` has been queued, so the host never
  blocks the GPU waiting for a copy.

Video clips (``modality="video"``) are decoded with :func:`cortexbench.video.decode_video`; the frames of a clip
go through the same network as one batch, each layer is pooled per frame and then averaged over time.
Model plugins only say how to build the network, which modules are its layers and how to preprocess.
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import DataError, InputError
from .interfaces import ActivationBatch, Layer
from .pooling import average_frames, pool
from .stimuli import StimulusSet
from .video import VideoSampling, decode_video

#: How images reach the network: Pillow decodes and resizes in DataLoader workers (``workers``); the workers only
#: decode and the device resizes the full-size pixels (``split``: the resize, Pillow's costliest step, moves to the
#: GPU); or the files' bytes, decoded where the network runs by torchvision
#: (``device``: nvJPEG on CUDA cores, libjpeg-turbo on the CPU) or by nvImageCodec on the GPU's hardware JPEG
#: engines (``nvjpg``).
DECODE_ROUTES = ("workers", "split", "device", "nvjpg")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the network's input tensor.

    ``resize="direct"`` scales the whole image to ``input_size`` (no cropping: the whole stimulus stays visible,
    as Brain-Score does for stimuli framed for human viewing); ``resize="crop"`` is timm's evaluation transform:
    with ``crop_mode="center"`` the shorter side goes to ``floor(input_size / crop_pct)`` (aspect kept), with
    ``crop_mode="squash"`` both sides do, and then the centre ``input_size`` square is cut out.
    """

    input_size: int = 224
    resize: str = "direct"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    crop_mode: str = "center"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def scale_size(self) -> int:
        """Side the image is resized to before the centre crop, exactly as timm's ``transforms_imagenet_eval``."""
        if self.crop_mode not in ("center", "squash"):
            raise InputError(f"crop_mode {self.crop_mode!r} is not supported (timm's 'border' mode pads with the "
                             "mean colour); use 'center' or 'squash'")
        return math.floor(self.input_size / self.crop_pct)

    def geometry(self) -> Callable:
        """PIL image -> resized (and cropped) PIL image; the part that runs in worker processes."""
        from torchvision import transforms as T

        modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
                 "nearest": T.InterpolationMode.NEAREST}
        mode = modes.get(self.interpolation)
        if mode is None:
            raise InputError(f"interpolation must be one of {sorted(modes)}, got {self.interpolation!r}")
        if self.resize == "direct":
            steps = [T.Resize((self.input_size, self.input_size), interpolation=mode, antialias=True)]
        elif self.resize == "crop":
            scale = self.scale_size()
            steps = [T.Resize(scale if self.crop_mode == "center" else (scale, scale), interpolation=mode,
                              antialias=True), T.CenterCrop(self.input_size)]
        else:
            raise InputError(f"resize must be 'direct' or 'crop', got {self.resize!r}")
        return T.Compose(steps)

    def resize_tensors(self, images: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Decoded uint8 ``(3, H, W)`` tensors, or one ``(B, 3, H, W)`` batch of one size (any strides, any
        device) -> resized, cropped uint8 ``(B, 3, S, S)``: the same geometry as :meth:`geometry`, on tensors.

        Antialiased resizing is linear and separable, so each same-sized group is resized by two matrix products
        ``Wy @ image @ Wx.T`` whose weights are torch's own antialiased interpolation of an identity basis (crop
        included): the same numbers as ``torchvision.transforms.v2.functional.resize`` to float rounding, at
        matrix-multiply speed (torch's antialiased CUDA kernel managed about 6,400 images/s on an H100). A fixed
        number of tensor operations per size group, none per image: the thread that queues them shares the GIL
        with the one that runs the network.
        """
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise InputError(f"interpolation must be bilinear, bicubic or nearest, got {self.interpolation!r}")
        if isinstance(images, torch.Tensor):
            return self._resize_group(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(tuple(image.shape), []).append(index)
        if len(groups) == 1:
            return self._resize_group(torch.stack(images))
        parts = [self._resize_group(torch.stack([images[i] for i in indices])) for indices in groups.values()]
        order = torch.tensor([i for indices in groups.values() for i in indices])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        return torch.cat(parts)[inverse.to(parts[0].device)]

    def _resize_group(self, batch: torch.Tensor) -> torch.Tensor:
        rows, cols = self._resize_weights(batch.shape[-2], batch.shape[-1], batch.device)
        return torch.matmul(torch.matmul(rows, batch.float()), cols.T).round_().clamp_(0, 255).to(torch.uint8)

    def _resize_weights(self, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column weight matrices ``(S, H)``, ``(S, W)`` of :meth:`resize_tensors` for one input size."""
        if self.resize == "direct":
            sizes, crop = (self.input_size, self.input_size), None
        elif self.resize == "crop":
            short = self.scale_size()
            if self.crop_mode == "squash":
                sizes = (short, short)
            else:  # torchvision: the shorter side becomes ``short``, the other keeps the aspect ratio
                sizes = (short, int(short * width / height)) if height <= width else (int(short * height / width),
                                                                                       short)
            crop = self.input_size
        else:
            raise InputError(f"resize must be 'direct' or 'crop', got {self.resize!r}")
        rows = _interpolation_matrix(height, sizes[0], self.interpolation, str(device))
        cols = _interpolation_matrix(width, sizes[1], self.interpolation, str(device))
        if crop is not None:  # torchvision's center_crop offsets
            top, left = int(round((sizes[0] - crop) / 2.0)), int(round((sizes[1] - crop) / 2.0))
            rows, cols = rows[top:top + crop], cols[left:left + crop]
        return rows, cols

    def transform(self) -> Callable:
        """The whole pipeline on the CPU (PIL -> normalized float tensor), as torchvision would write it."""
        from torchvision import transforms as T

        return T.Compose([self.geometry(), T.ToTensor(), T.Normalize(self.mean, self.std)])

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)`` on any device -> normalized float ``(B, 3, H, W)`` (channels-last memory)."""
        scale = torch.tensor([1 / (255 * s) for s in self.std], device=batch.device)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=batch.device)
        return (batch.float() * scale + shift).permute(0, 3, 1, 2)

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@contextlib.contextmanager
def _quiet_torchvision_io():
    """torchvision 0.29 marks its image I/O deprecated (in favour of TorchCodec); it still works and is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(size_in: int, size_out: int, mode: str, device: str) -> torch.Tensor:
    """``(size_out, size_in)`` weights of torch's antialiased 1-D resize: torch applied to an identity basis."""
    basis = torch.eye(size_in, dtype=torch.float64).reshape(1, 1, size_in, size_in)
    kwargs = {} if mode == "nearest" else {"antialias": True, "align_corners": False}
    resized = torch.nn.functional.interpolate(basis, size=(size_in, size_out), mode=mode, **kwargs)
    return resized[0, 0].T.contiguous().to(device=device, dtype=torch.float32)


def _uint8_hwc(image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8, copy=True))


def _is_file_of(item, suffixes: tuple[str, ...]) -> bool:
    return isinstance(item, (str, os.PathLike)) and str(item).lower().rsplit(".", 1)[-1] in suffixes


def _decoded_pixels(stimuli: StimulusSet, index: int) -> np.ndarray:
    """Stimulus ``index`` as full-size RGB uint8 ``(H, W, 3)`` pixels.

    JPEG and PNG files are decoded by torchvision (libjpeg-turbo and libpng, the same pixels as Pillow: both
    decoders are exact integer arithmetic), about a third faster per image than Pillow's open + array hand-over,
    which copies the pixels twice; everything else as :meth:`StimulusSet.load` gives it."""
    item = stimuli.items[index]
    if _is_file_of(item, ("jpg", "jpeg", "png")):
        with _quiet_torchvision_io():
            from torchvision.io import ImageReadMode, decode_image, read_file

            return decode_image(read_file(str(item)), mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()
    return np.asarray(stimuli.load(index))


@dataclass(frozen=True)
class DecodedBatch:
    """Full-size decoded images of a batch in one flat uint8 buffer, plus their ``(H, W)`` shapes.

    Built in the DataLoader worker directly in shared memory, so a batch of differently sized images crosses to the
    main process as one buffer, is staged into pinned memory by several threads (one thread's copy, which is what
    the DataLoader's ``pin_memory`` would do, capped the route near 5,000 images/s on an H100 host while the workers
    sat idle) and reaches the device by one transfer.
    """

    data: torch.Tensor
    shapes: torch.Tensor

    @staticmethod
    def collate(items: list[np.ndarray]) -> DecodedBatch:
        total = sum(item.size for item in items)
        if torch.utils.data.get_worker_info() is not None:  # born shared: handing it over copies nothing
            data = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(total))
        else:
            data = torch.empty(total, dtype=torch.uint8)
        flat, offset = data.numpy(), 0
        for item in items:
            flat[offset:offset + item.size] = item.reshape(-1)
            offset += item.size
        return DecodedBatch(data, torch.tensor([item.shape[:2] for item in items], dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.shapes)

    def pixels(self, device: str) -> torch.Tensor | list[torch.Tensor]:
        """The batch on ``device`` by one transfer, as views: one uint8 ``(B, 3, H, W)`` when all images share a
        size (no per-image operations at all), else a ``(3, H, W)`` view per image."""
        data = self.data
        if str(device).startswith("cuda") and not data.is_pinned():
            data = _pinned_copy(data)
        data = data.to(device, non_blocking=True)
        shapes = self.shapes.tolist()
        if all(shape == shapes[0] for shape in shapes):
            height, width = shapes[0]
            return data.view(len(shapes), height, width, 3).permute(0, 3, 1, 2)
        parts = torch.split(data, [height * width * 3 for height, width in shapes])
        return [part.view(height, width, 3).permute(2, 0, 1) for part, (height, width) in zip(parts, shapes)]


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of encoded files as one contiguous buffer plus sizes.

    Built in the DataLoader worker (``collate``), so the main process unpickles one buffer per batch instead of one
    object per image: per-image Python handling, not decoding, limited the device-decode route before.
    """

    data: np.ndarray
    sizes: np.ndarray

    @staticmethod
    def collate(items: list[bytes]) -> EncodedBatch:
        return EncodedBatch(np.frombuffer(bytearray().join(items), dtype=np.uint8),  # writable: torch needs it
                            np.fromiter((len(item) for item in items), dtype=np.int64, count=len(items)))

    def __len__(self) -> int:
        return len(self.sizes)

    def tensors(self) -> list[torch.Tensor]:
        """One contiguous uint8 view per file (no copies), as ``decode_jpeg`` takes them."""
        return list(torch.split(torch.from_numpy(self.data), self.sizes.tolist()))

    def arrays(self) -> list[np.ndarray]:
        """One contiguous uint8 numpy view per file (no copies), as nvImageCodec takes them."""
        return np.split(self.data, np.cumsum(self.sizes)[:-1])


#: Threads that copy a decoded batch into pinned memory (each ``copy_`` releases the GIL).
_STAGING_THREADS = 4


@functools.lru_cache(maxsize=1)
def _staging_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_STAGING_THREADS, thread_name_prefix="cortexbench-staging")


def _pinned_copy(data: torch.Tensor) -> torch.Tensor:
    """``data`` (flat, host) copied into page-locked memory by :data:`_STAGING_THREADS` threads at once. The block
    comes from torch's caching host allocator, which keeps it until the transfer queued from it has finished."""
    return _parallel_copy(torch.empty(data.shape, dtype=data.dtype, pin_memory=True), data)


def _parallel_copy(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``target.copy_(source)`` for flat tensors, in chunks of at least 1 MiB spread over the staging threads."""
    chunks = max(1, min(_STAGING_THREADS, source.numel() // (1 << 20)))
    list(_staging_pool().map(_copy_chunk, target.chunk(chunks), source.chunk(chunks)))
    return target


def _copy_chunk(target: torch.Tensor, source: torch.Tensor) -> None:
    with torch.inference_mode():  # the target may be an inference tensor (made in the decode thread)
        target.copy_(source)


@functools.lru_cache(maxsize=None)
def _nvimgcodec_decoder(device_index: int | None) -> tuple[Any, Any]:
    """An nvImageCodec decoder and decode parameters matching the other routes: RGB, 8 bits, EXIF orientation not
    applied (neither Pillow nor torchvision applies it). On GPU ``device_index`` it decodes on the hardware JPEG
    engines (its CUDA decoder takes the files the engines cannot, e.g. progressive JPEGs); with ``None`` on
    nvImageCodec's CPU backend (libjpeg-turbo), which needs no CUDA driver, so the same library and hand-over run
    on any machine. One per device, reused."""
    try:
        from nvidia import nvimgcodec
    except ImportError as err:
        raise InputError("decode='nvjpg' needs NVIDIA nvImageCodec: pip install 'cortexbench[nvjpg]' (the wheel "
                         "nvidia-nvimgcodec-cu13), or use decode='device' or decode='workers'") from err
    if device_index is None:
        decoder = nvimgcodec.Decoder(device_id=nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY,
                                     backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.CPU_ONLY)])
    else:
        backends = [nvimgcodec.Backend(nvimgcodec.BackendKind.HW_GPU_ONLY),
                    nvimgcodec.Backend(nvimgcodec.BackendKind.GPU_ONLY)]
        decoder = nvimgcodec.Decoder(device_id=device_index, backends=backends)
    params = nvimgcodec.DecodeParams(apply_exif_orientation=False, color_spec=nvimgcodec.ColorSpec.SRGB,
                                     sample_format=nvimgcodec.SampleFormat.I_RGB)
    return decoder, params


def nvjpg_decoder(device: str) -> tuple[Any, Any]:
    """The (decoder, parameters) of ``decode="nvjpg"`` for ``device``: the GPU's hardware JPEG engines on CUDA,
    nvImageCodec's CPU backend on the CPU; clear errors elsewhere or without the wheel.
    Tests replace this function to run the route's hand-over with a decoder of their own."""
    device = str(device)
    if device == "cpu":
        return _nvimgcodec_decoder(None)
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise InputError(f"decode='nvjpg' decodes with nvImageCodec on a CUDA GPU's hardware JPEG engines (or on "
                         f"the CPU), but the device is {device!r} and CUDA is "
                         f"{'available' if torch.cuda.is_available() else 'not available'}; use device 'cuda' or "
                         "'cpu', or decode='device' or decode='workers'")
    index = torch.device(device).index
    return _nvimgcodec_decoder(torch.cuda.current_device() if index is None else index)


def _decode_nvjpg(batch: EncodedBatch | list[torch.Tensor], device: str) -> list[torch.Tensor]:
    """JPEG files -> uint8 ``(3, H, W)`` tensors on ``device`` by nvImageCodec, ordered on the current stream."""
    decoder, params = nvjpg_decoder(device)
    sources = batch.arrays() if isinstance(batch, EncodedBatch) else [t.numpy() for t in batch]
    cuda = str(device).startswith("cuda")
    stream = torch.cuda.current_stream(device).cuda_stream if cuda else 0
    # decode into the previous batch's images (no allocation or release per batch). Safe because one thread decodes
    # per extraction, on one stream: the previous batch was resized (copied) on it before these writes are queued.
    # (This did not make the decoder overlap the network; docs/benchmarks.md has the measurement.)
    owner, previous = _NVJPG_IMAGES.pop(id(decoder), (None, None))
    if owner is decoder and len(previous) == len(sources):
        decoded = decoder.decode(sources, images=previous, params=params, cuda_stream=stream)
    else:
        decoded = decoder.decode(sources, params=params, cuda_stream=stream)
    failed = [i for i, image in enumerate(decoded) if image is None]
    if failed:
        raise DataError(f"nvImageCodec could not decode {len(failed)} of the {len(decoded)} JPEG files of a batch "
                        f"(first at position {failed[0]} of the batch); use decode='device' or decode='workers'")
    _NVJPG_IMAGES[id(decoder)] = (decoder, decoded)
    if not cuda:  # host images: numpy's array interface is a zero-copy view (torch's DLPack path would ask CUDA)
        return [torch.from_numpy(np.asarray(image)).permute(2, 0, 1) for image in decoded]
    # zero-copy views (the tensor keeps the decoded image alive); HWC -> CHW as torchvision decodes
    return [torch.as_tensor(image, device=device).permute(2, 0, 1) for image in decoded]


#: The last batch of decoded images per decoder (held with it, so a new decoder never takes an old one's id), reused
#: as the next batch's output buffers.
_NVJPG_IMAGES: dict[int, tuple[Any, list[Any]]] = {}


class _InputDataset(torch.utils.data.Dataset):
    """Stimulus ``i`` as the network's input, built in a worker process.

    Images: uint8 ``(H, W, 3)`` resized, or the output of ``transform`` when the model brings its own (a float
    tensor); with ``route="split"`` full-size decoded pixels; with ``"device"``/``"nvjpg"`` the file's bytes.
    Videos: the same per frame, stacked to ``(T, ...)``.
    """

    def __init__(self, stimuli: StimulusSet, preprocessing: Preprocessing, video: VideoSampling,
                 transform: Callable | None, route: str = "workers"):
        self.stimuli, self.preprocessing, self.video, self.transform = stimuli, preprocessing, video, transform
        self.geometry = preprocessing.geometry()
        self.route = route

    def __len__(self) -> int:
        return len(self.stimuli)

    def _image(self, image) -> torch.Tensor:
        if self.transform is not None:
            return self.transform(image)
        return _uint8_hwc(self.geometry(image))

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.stimuli.modality == "image":
            if self.route == "split":
                return _decoded_pixels(self.stimuli, index)
            if self.route in ("device", "nvjpg"):
                # plain bytes travel through the worker pipe; a tensor per file would each need its own shared-
                # memory file descriptor, which runs out (EBADF) with many workers and a deep prefetch
                return Path(self.stimuli.items[index]).read_bytes()
            return self._image(self.stimuli.load(index))
        from PIL import Image

        video = self.video
        frames = decode_video(self.stimuli.load(index), fps=video.fps, size=video.size, n_frames=video.n_frames)
        if video.frames == "direct" and self.transform is None:
            return torch.from_numpy(frames)
        return torch.stack([self._image(Image.fromarray(frame)) for frame in frames])


class _StopForward(Exception):
    """Raised by the hook of the deepest requested layer: nothing after it needs computing."""


def default_workers(device: str) -> int:
    """DataLoader workers: none on the CPU (they would compete with the network), else all cores but one."""
    return 0 if not device.startswith("cuda") else max(1, min(16, (os.cpu_count() or 2) - 1))


@dataclass
class TorchImageModel:
    """A torch image network with named layers; implements :class:`cortexbench.interfaces.Model`.

    ``build`` constructs the network (weights loaded) on the CPU; it is called once, on first extraction.
    ``modules`` maps layer names to module paths when they differ (default: the layer name is the path).
    ``transform`` (optional) replaces the worker-side preprocessing: PIL image -> normalized float ``(3, H, W)``
    (e.g. a Hugging Face image processor); by default workers resize and crop and the device normalizes.
    Video clips are sampled as ``video`` says (Höfling et al.: 4 fps, 256 x 256, 12 frames).
    ``decode="split"`` has the workers only decode (any image format) and resizes on the extraction device, where
    the GPU does in microseconds what costs Pillow most of its time per image.
    ``decode="device"`` has the workers only read JPEG files and decodes and resizes them on the extraction
    device with torchvision (nvJPEG on CUDA), for when CPU decoding cannot keep up with the GPU; ``decode="nvjpg"``
    decodes them on the GPU's hardware JPEG engines with nvImageCodec (optional dependency; on the CPU, its CPU
    backend), with pixels closest to Pillow's; on an H100 it is not faster than ``device`` (docs/benchmarks.md).
    The resizes of these routes differ slightly from Pillow's, so the route is part of the fingerprint.
    """

    identifier: str
    build: Callable[[], torch.nn.Module]
    layers: tuple[Layer, ...]
    preprocessing: Preprocessing
    weights_id: str
    region_layer_map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modules: Mapping[str, str] = field(default_factory=dict)
    fingerprint_extra: Mapping[str, str] = field(default_factory=dict)
    modalities: frozenset[str] = frozenset({"image", "video"})
    video: VideoSampling = field(default_factory=VideoSampling)
    transform: Callable | None = None
    num_workers: int | None = None
    decode: str = "workers"
    _network: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _device: str | None = field(default=None, init=False, repr=False)

    def fingerprint(self) -> dict[str, str]:
        return {"model": self.identifier, "weights": self.weights_id, "preprocessing": self.preprocessing.as_json(),
                "video": self.video.as_json(), "torch": torch.__version__.split("+")[0],
                **({"decode": self.decode} if self.decode != "workers" else {}),
                "class": type(self).__qualname__, **self.fingerprint_extra}

    def network(self, device: str = "cpu") -> torch.nn.Module:
        """The network in eval mode on ``device`` (built once, moved when the device changes)."""
        if self._network is None:
            self._network = self.build().eval()
        if self._device != device:
            self._network.to(device)
            if device.startswith("cuda"):
                self._network.to(memory_format=torch.channels_last)
            self._device = device
        return self._network

    def _layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InputError(f"model {self.identifier!r} has no layer {name!r}; its layers are "
                         f"{[l.name for l in self.layers]}")

    # --- the parts subclasses may replace ----------------------------------------------------------------
    def prepare(self, batch: torch.Tensor | DecodedBatch | EncodedBatch | list[torch.Tensor], device: str
                ) -> torch.Tensor:
        """A collated batch on ``device`` as the network's float input (encoded files: decoded there first;
        full-size pixels: resized there)."""
        if isinstance(batch, DecodedBatch):
            batch = self.preprocessing.resize_tensors(batch.pixels(device)).permute(0, 2, 3, 1)
        elif isinstance(batch, (EncodedBatch, list)):  # encoded files: decode where the network runs
            if self.decode == "nvjpg":
                images = _decode_nvjpg(batch, device)
            else:
                encoded = batch.tensors() if isinstance(batch, EncodedBatch) else batch
                with _quiet_torchvision_io():
                    from torchvision.io import ImageReadMode, decode_jpeg

                    images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
            batch = self.preprocessing.resize_tensors(images).permute(0, 2, 3, 1)
        batch = batch.to(device, non_blocking=True)
        if batch.dtype == torch.uint8:
            batch = self.preprocessing.normalize(batch)
        if not device.startswith("cuda"):
            batch = batch.contiguous()
        elif batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def forward_layers(self, network: torch.nn.Module, inputs: torch.Tensor, wanted: Sequence[Layer],
                       pooling: str) -> dict[str, torch.Tensor]:
        """Pooled ``(batch, features)`` outputs of ``wanted`` layers, by forward hooks; stops after the deepest."""
        order = {layer.name: i for i, layer in enumerate(self.layers)}
        deepest = max(wanted, key=lambda layer: order[layer.name]).name
        named = dict(network.named_modules())
        outputs: dict[str, torch.Tensor] = {}

        def make_hook(layer: Layer):
            def hook(_module, _inputs, output):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                pooled = pool(output, layer.layout, pooling)
                if pooled.untyped_storage().data_ptr() == output.untyped_storage().data_ptr():
                    pooled = pooled.clone()  # a view: later in-place ops of the network must not change it
                outputs[layer.name] = pooled
                if layer.name == deepest:
                    raise _StopForward
            return hook

        handles = []
        try:
            for layer in wanted:
                path = self.modules.get(layer.name, layer.name)
                if path not in named:
                    raise InputError(f"model {self.identifier!r}: layer {layer.name!r} maps to module {path!r}, "
                                     "which the network does not have")
                handles.append(named[path].register_forward_hook(make_hook(layer)))
            try:
                network(inputs)
            except _StopForward:
                pass
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    def _input_route(self, stimuli: StimulusSet, device: str) -> str:
        """The route this stimulus set takes (videos always go through the workers); the encoded routes need JPEG
        files (and ``nvjpg`` a CUDA device or the CPU, with nvImageCodec); a model's own transform needs the
        workers."""
        if self.decode not in DECODE_ROUTES:
            raise InputError(f"decode must be one of {DECODE_ROUTES}, got {self.decode!r}")
        if self.decode == "workers" or stimuli.modality != "image":
            return "workers"
        if self.transform is not None:
            raise InputError(f"model {self.identifier!r} brings its own image transform; use decode='workers'")
        if self.decode == "split":
            return "split"
        bad = [str(item) for item in stimuli.items if not _is_file_of(item, ("jpg", "jpeg"))]
        if bad:
            raise InputError(f"decode={self.decode!r} reads JPEG files only; stimulus set {stimuli.identifier!r} "
                             f"has {len(bad)} other stimuli (e.g. {bad[0][:80]}); use decode='split' or "
                             "decode='workers'")
        if self.decode == "nvjpg":
            nvjpg_decoder(device)       # fails early and clearly: no CUDA device, or no nvImageCodec
        return self.decode

    # --- extraction --------------------------------------------------------------------------------------
    def iter_activations(self, stimuli: StimulusSet, layers: Sequence[str], *, pooling: str = "avg",
                         device: str = "cpu", batch_size: int = 64, precision: str = "fp32",
                         ) -> Iterator[ActivationBatch]:
        require_modality(self, stimuli)
        wanted = [self._layer(name) for name in layers]
        if not wanted:
            raise InputError(f"model {self.identifier!r}: no layers requested")
        network = self.network(device)
        video = stimuli.modality == "video"
        n_frames = self.video.n_frames if video else 1
        per_batch = max(1, batch_size // n_frames)  # batch_size counts images (frames) per forward pass
        cuda = device.startswith("cuda")
        workers = default_workers(device) if self.num_workers is None else self.num_workers
        route = self._input_route(stimuli, device)
        collate = {"split": DecodedBatch.collate, "device": EncodedBatch.collate, "nvjpg": EncodedBatch.collate}
        loader = torch.utils.data.DataLoader(
            _InputDataset(stimuli, self.preprocessing, self.video, self.transform, route), batch_size=per_batch,
            shuffle=False, num_workers=workers, pin_memory=cuda and route == "workers",
            prefetch_factor=4 if workers else None, collate_fn=collate.get(route))
        if cuda:
            torch.backends.cudnn.benchmark = True
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and precision == "bf16")

        def compute(batch: torch.Tensor) -> dict[str, torch.Tensor]:
            if video:  # (clips, T, ...) -> (clips * T, ...), pooled per frame, then averaged over time
                batch = batch.reshape(-1, *batch.shape[2:])
            inputs = self.prepare(batch, device)
            pooled = self.forward_layers(network, inputs, wanted, pooling)
            if video:
                pooled = {name: average_frames(values, n_frames) for name, values in pooled.items()}
            return pooled

        batches = loader
        # the network runs on a stream of its own: a library that queues work on the legacy default stream (as
        # nvImageCodec does) would otherwise wait behind every queued forward pass instead of running beside it
        network_stream = torch.cuda.Stream(device=device) if cuda else None
        if route != "workers" and cuda:  # decode/resize batch k + 1 on a side stream while the network runs batch k
            batches = _prefetch_on_device(loader, lambda batch: self.prepare(batch, device), device,
                                          consumer=network_stream)
        with torch.inference_mode(), autocast:
            yield from stream_to_host(batches, compute, list(layers), device, stream=network_stream)


def _prefetch_on_device(batches: Iterable[Any], prepare: Callable[[Any], torch.Tensor], device: str,
                        depth: int = 2, consumer: torch.cuda.Stream | None = None) -> Iterator[torch.Tensor]:
    """Run ``prepare`` (decode + resize on the GPU) in a thread on its own CUDA stream, ``depth`` batches ahead.

    The consumer's stream (``consumer``, default: the current one) waits on each batch's event, so the network
    never reads a half-decoded batch, and ``record_stream`` keeps the caching allocator from reusing its memory
    while the network still reads it.
    """
    stream = torch.cuda.Stream(device=device)
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            with torch.cuda.stream(stream), torch.inference_mode():
                for batch in batches:
                    if stop.is_set():
                        return
                    prepared = prepare(batch)
                    event = torch.cuda.Event()
                    event.record(stream)
                    ready.put((prepared, event))
            ready.put((done, None))
        except BaseException as err:  # surfaced in the consumer
            ready.put((err, None))

    worker = threading.Thread(target=produce, name="cortexbench-device-decode", daemon=True)
    worker.start()
    try:
        while True:
            item, event = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            current = consumer if consumer is not None else torch.cuda.current_stream(device)
            current.wait_event(event)
            item.record_stream(current)
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)


def require_modality(model, stimuli: StimulusSet) -> None:
    """A clear error when a model is handed stimuli of a modality it does not take."""
    if stimuli.modality not in model.modalities:
        raise InputError(f"model {model.identifier!r} accepts {sorted(model.modalities)} stimuli; stimulus set "
                         f"{stimuli.identifier!r} is {stimuli.modality}")


def stream_to_host(batches: Iterable[Any], compute: Callable[[Any], Mapping[str, torch.Tensor]],
                   layers: Sequence[str], device: str, stream: torch.cuda.Stream | None = None
                   ) -> Iterator[ActivationBatch]:
    """Run ``compute`` on each batch (on CUDA ``stream`` if given) and yield host copies, one batch behind on CUDA
    (see the module docstring)."""
    cuda = device.startswith("cuda")
    pending = None
    start = 0
    for batch in batches:
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            pooled = compute(batch)
            parts = [pooled[name] for name in layers]
            rows = parts[0].shape[0]
            parts = [p.reshape(rows, -1).float() for p in parts]
            widths = [p.shape[1] for p in parts]
            flat = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
            if cuda:
                host = torch.empty(flat.shape, dtype=torch.float32, pin_memory=True)
                host.copy_(flat, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
            else:
                host, ready = flat.contiguous(), None
        if pending is not None:
            yield _finish(*pending, layers)
        pending = (start, host, ready, widths)
        start += rows
    if pending is not None:
        yield _finish(*pending, layers)


def _finish(start: int, host: torch.Tensor, ready, widths: list[int], layers: Sequence[str]) -> ActivationBatch:
    if ready is not None:
        ready.synchronize()
    values = host.numpy()
    bounds = np.cumsum([0, *widths])
    return ActivationBatch(start, {name: values[:, bounds[i]:bounds[i + 1]] for i, name in enumerate(layers)})


def extract_all(model, stimuli: StimulusSet, layers: Sequence[str], **kwargs) -> dict[str, np.ndarray]:
    """Concatenate a model's batches into one array per layer (no cache; small sets and tests)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    for batch in model.iter_activations(stimuli, layers, **kwargs):
        for name in layers:
            parts[name].append(batch.features[name])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}
