"""Steady-state throughput of each decoding route through the real extraction loop (no cache), and of the
``split`` route's loader alone: where end-to-end images/s are lost, on the machine at hand.

Each row starts the clock after the first batch (worker start-up excluded) and reports the share of CPU time that
was busy (``/proc/stat``): a route bounded by its consumer leaves workers idle.

  python bench/extraction_steady_state.py --device cuda --images 16384
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from extraction_resnet50 import source_images


def cpu_times() -> tuple[int, int]:
    try:
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]
    except OSError:  # not Linux: no busy share
        return 0, 0


def steady(batches, count) -> tuple[float, float]:
    """images/s after the first batch, busy share of all CPUs."""
    c0, first, n = cpu_times(), None, 0
    for batch in batches:
        if first is None:
            first = time.perf_counter()
        else:
            n += count(batch)
    end, c1 = time.perf_counter(), cpu_times()
    return n / max(end - first, 1e-9), 1 - (c1[1] - c0[1]) / max(1, c1[0] - c0[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    from cortexbench import extraction
    from cortexbench.extraction import DecodedBatch, _InputDataset, default_workers
    from cortexbench.plugins.models.timm_models.model import build_untrained
    from cortexbench.stimuli import StimulusSet

    model = build_untrained("resnet50", 0, granularity="blocks")
    layers = [layer.name for layer in model.layers]
    precision = "bf16" if args.device.startswith("cuda") else "fp32"
    workers = default_workers(args.device) or 1
    with tempfile.TemporaryDirectory() as tmp:
        stimuli = StimulusSet.from_files("steady", source_images(args.images, 425, Path(tmp) / "jpegs"))
        start, sample = time.perf_counter(), min(256, len(stimuli))
        for i in range(sample):
            extraction._decoded_pixels(stimuli, i)
        print(f"decode only, 1 process: {(time.perf_counter() - start) / sample * 1e3:.3f} ms/image")
        dataset = _InputDataset(stimuli, model.preprocessing, model.video, None, route="split")
        for stage in (False, True):
            loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=workers,
                                                 prefetch_factor=4, collate_fn=DecodedBatch.collate)
            if stage and args.device.startswith("cuda"):
                loader = (DecodedBatch(extraction._pinned_copy(b.data), b.shapes) for b in loader)
            elif stage:
                continue
            rate, busy = steady(loader, len)
            print(f"split loader, {workers} workers{' + pinned staging' if stage else '':<20} {rate:9,.0f} img/s  "
                  f"cpu busy {busy:.2f}")
        real_forward = model.forward_layers
        rows = lambda b: len(next(iter(b.features.values())))  # noqa: E731
        for index, (decode, network) in enumerate((("split", True), ("split", True), ("split", False),
                                                   ("device", True), ("workers", True))):
            model.decode = decode
            model.forward_layers = real_forward if network else (
                lambda net, inputs, wanted, pooling: {layer.name: inputs.mean((2, 3)) for layer in wanted})
            rate, busy = steady(model.iter_activations(stimuli, layers, device=args.device,
                                                       batch_size=args.batch_size, precision=precision), rows)
            label = ("(warm-up: cuDNN autotuning)" if index == 0 else "with ResNet-50" if network
                     else "without the network")
            print(f"route {decode:<8} {label:<28} {rate:9,.0f} img/s  cpu busy {busy:.2f}")


if __name__ == "__main__":
    main()
