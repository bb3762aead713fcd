"""``decode_video`` against Höfling et al.'s own loader (imageio + PyAV filters) and a planted frame clock."""
from __future__ import annotations

import numpy as np
import pytest

from cortexbench.errors import InputError
from cortexbench.video import VideoSampling, decode_video


def write_clip(path, *, n_frames: int, rate: int, width: int = 64, height: int = 48):
    """Frame ``i`` is uniform gray ``(8 * i) % 256`` in its left half and white in its right half (a planted clock)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "0"}  # lossless enough that the clock reads back exactly
        for i in range(n_frames):
            frame = np.full((height, width, 3), (8 * i) % 256, dtype=np.uint8)
            frame[:, width // 2:] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("rate, n_frames", [(8, 24), (30, 90), (24, 72)])
def test_matches_the_reference_loader(tmp_path, rate, n_frames):
    import imageio.v3 as iio

    path = write_clip(tmp_path / "clip.mp4", n_frames=n_frames, rate=rate)
    ours = decode_video(path, fps=4, size=32, n_frames=12)
    # Höfling et al. (multitasking/datasets.py): imageio's PyAV plugin with these filters, first ceil(3 * 4) frames
    reference = iio.imread(path, plugin="pyav", filter_sequence=[("framerate", "fps=4"), ("scale", "w=32:h=32")])
    assert ours.shape == (12, 32, 32, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, reference[:12])


def test_frames_are_sampled_at_the_requested_rate(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", n_frames=24, rate=8)  # 3 s at 8 fps
    frames = decode_video(path, fps=4, size=16, n_frames=12)
    clock = frames[:, 8, 2, 0].astype(int)  # left half: gray 8 * source index
    # at 4 fps every other source frame falls exactly on an output time stamp: 0, 2, 4, ...
    np.testing.assert_allclose(clock, 8 * np.arange(0, 24, 2), atol=2)
    # the resize keeps the left/right layout of the (non-square) source
    assert (frames[:, :, -2:, :] > 240).all()


def test_short_clip_is_an_error_not_padding(tmp_path):
    path = write_clip(tmp_path / "short.mp4", n_frames=8, rate=8)  # 1 s
    with pytest.raises(InputError, match="gives only 4 frame"):
        decode_video(path, fps=4, n_frames=12)
    assert decode_video(path, fps=4, size=8, n_frames=4).shape == (4, 8, 8, 3)


def test_bad_arguments_and_files(tmp_path):
    from cortexbench.errors import DataError

    with pytest.raises(InputError):
        VideoSampling(frames="crop")
    with pytest.raises(InputError):
        decode_video(tmp_path / "x.mp4", fps=0)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match="broken.mp4"):
        decode_video(tmp_path / "broken.mp4")
