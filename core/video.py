"""Video decoding at a fixed frame rate and size, as Höfling et al. (ICLR 2026) load the BOLD Moments clips.

Their loader (``imageio`` with the PyAV plugin) passes every decoded frame through the FFmpeg filter chain
``framerate=fps=4`` (temporal resampling; frames between source frames are blended) and ``scale=w=256:h=256``
(a plain resize to a square, no aspect-preserving crop), converts to RGB and keeps the first ``ceil(3 s * fps)``
frames. :func:`decode_video` builds the same libav filter graph directly with PyAV, so the pixels are the
library's own, not a re-implementation.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from .errors import DataError, InputError


@dataclass(frozen=True)
class VideoSampling:
    """How a clip becomes frames for an image model.

    ``frames="preprocess"`` runs each decoded frame through the model's own image preprocessing (resize/crop,
    normalization), exactly as a still image; ``frames="direct"`` feeds the decoded ``size`` x ``size`` frames
    whole, only scaled to [0, 1] and normalized (Höfling et al. feed 256 x 256 frames to every image model).
    """

    fps: float = 4.0
    size: int = 256
    n_frames: int = 12
    frames: str = "preprocess"

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.size < 1 or self.n_frames < 1:
            raise InputError(f"video sampling needs fps > 0, size >= 1 and n_frames >= 1; got {self}")
        if self.frames not in ("preprocess", "direct"):
            raise InputError(f"video frames must be 'preprocess' or 'direct', got {self.frames!r}")

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def decode_video(path: str | os.PathLike, *, fps: float = 4.0, size: int = 256, n_frames: int = 12) -> np.ndarray:
    """The first ``n_frames`` frames of ``path`` resampled to ``fps`` and resized to ``size`` x ``size``.

    Returns ``(n_frames, size, size, 3)`` uint8 RGB. A clip too short to give ``n_frames`` frames at ``fps`` is an
    error (no silent padding): pass a smaller ``n_frames`` or a higher ``fps``.
    """
    import av

    if fps <= 0 or size < 1 or n_frames < 1:
        raise InputError(f"decode_video({path!s}): need fps > 0, size >= 1, n_frames >= 1; "
                         f"got fps={fps}, size={size}, n_frames={n_frames}")
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as err:
        raise DataError(f"cannot open video {path}: {err}; is it a readable video file (e.g. H.264 mp4)?") from err
    frames: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise DataError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=stream), graph.add("framerate", f"fps={fps:g}"),
                 graph.add("scale", f"w={size}:h={size}"), graph.add("buffersink")]
        for upstream, downstream in zip(chain, chain[1:]):
            upstream.link_to(downstream)
        graph.configure()

        def drain() -> bool:
            """Pull every frame the graph has ready; False once it reports end of stream."""
            while len(frames) < n_frames:
                try:
                    frames.append(graph.pull().to_ndarray(format="rgb24"))
                except av.error.BlockingIOError:
                    return True
                except av.error.EOFError:
                    return False
            return False

        try:
            for frame in container.decode(stream):
                graph.push(frame)
                if not drain():
                    break
            else:
                graph.push(None)
                drain()
        except av.error.FFmpegError as err:
            raise DataError(f"cannot decode video {path}: {err}") from err
    if len(frames) < n_frames:
        raise InputError(f"video {path} gives only {len(frames)} frame(s) at {fps:g} fps, {n_frames} requested; "
                         "the clip is shorter than n_frames / fps seconds (pass a smaller n_frames)")
    return np.stack(frames[:n_frames])
