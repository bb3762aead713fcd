"""Where end-to-end extraction time goes: each input-pipeline stage timed alone, on the machine at hand.

Stages: reading the JPEG bytes; Pillow decode + resize in one process (the per-worker cost); the DataLoader of
``TorchImageModel`` with N workers (uint8 hand-over, with and without pinning); torchvision's batched JPEG decode
and the tensor resize on the device. Compare each figure with the network's bare images/s
(``extraction_resnet50.py``): the slowest stage bounds end-to-end throughput.

  python bench/extraction_input_pipeline.py --device cuda --images 4096
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} images/s ({seconds * 1e3 / count:.3f} ms/image)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--image-size", type=int, default=425)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    from extraction_resnet50 import source_images

    from cortexbench.extraction import EncodedBatch, _InputDataset, default_workers
    from cortexbench.plugins.models.timm_models.model import build_untrained
    from cortexbench.stimuli import StimulusSet

    model = build_untrained("resnet50", 0)
    workers = args.workers if args.workers is not None else default_workers(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        paths = source_images(args.images, args.image_size, Path(tmp) / "jpegs")
        stimuli = StimulusSet.from_files("pipeline", paths)
        print(f"{args.images} JPEGs of {args.image_size}px, {os.cpu_count()} cores, {workers} workers, "
              f"batch {args.batch_size}, device {args.device}")
        start = time.perf_counter()
        blobs = [p.read_bytes() for p in paths]
        print("read bytes, 1 process            ", rate(len(blobs), time.perf_counter() - start))
        dataset = _InputDataset(stimuli, model.preprocessing, model.video, None)
        start = time.perf_counter()
        for i in range(min(256, len(stimuli))):
            dataset[i]
        print("Pillow decode + resize, 1 process", rate(min(256, len(stimuli)), time.perf_counter() - start))
        from cortexbench.extraction import DecodedBatch, _decoded_pixels

        start = time.perf_counter()
        for i in range(min(256, len(stimuli))):
            _decoded_pixels(stimuli, i)
        print("decode only (split), 1 process    ", rate(min(256, len(stimuli)), time.perf_counter() - start))
        for pin in (False, True):
            loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=workers,
                                                 pin_memory=pin and args.device.startswith("cuda"),
                                                 prefetch_factor=4 if workers else None)
            start, count = time.perf_counter(), 0
            for batch in loader:
                count += len(batch)
            print(f"DataLoader uint8, pin={pin!s:5}       ", rate(count, time.perf_counter() - start))
        if args.device.startswith("cuda"):
            from torchvision.io import ImageReadMode, decode_jpeg

            encoded = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs[:args.batch_size]]
            warm = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=args.device)  # warm-up (nvJPEG handles)
            model.preprocessing.resize_tensors(warm)                                  # and cuBLAS, weights
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(4):
                images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=args.device)
            torch.cuda.synchronize()
            print("nvJPEG batched decode on device  ", rate(4 * len(encoded), time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(4):
                model.preprocessing.resize_tensors(images)
            torch.cuda.synchronize()
            print("tensor resize on device          ", rate(4 * len(encoded), time.perf_counter() - start))
            # the whole device route without the network: worker reads -> bytes -> decode -> resize -> normalize
            def route_loader(route: str):
                split = route == "split"
                return torch.utils.data.DataLoader(
                    _InputDataset(stimuli, model.preprocessing, model.video, None, route=route),
                    batch_size=args.batch_size, num_workers=workers, prefetch_factor=4 if workers else None,
                    pin_memory=split, collate_fn=DecodedBatch.collate if split else EncodedBatch.collate)

            routes = ["split", "device"]
            try:
                from cortexbench.extraction import _decode_nvjpg, nvjpg_decoder

                nvjpg_decoder(args.device)
                routes.append("nvjpg")
                batch = EncodedBatch.collate(blobs[:args.batch_size])
                _decode_nvjpg(batch, args.device)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(4):
                    _decode_nvjpg(batch, args.device)
                torch.cuda.synchronize()
                print("nvImageCodec decode, NVJPG engines", rate(4 * len(batch), time.perf_counter() - start))
            except Exception as err:  # noqa: BLE001 - reported; the other stages still run
                print(f"decode='nvjpg' not measured: {err}")
            for route in routes:
                model.decode = route
                loader = route_loader(route)
                for name, batches in (("serial", loader), ("prefetch thread", None)):
                    if batches is None:
                        from cortexbench.extraction import _prefetch_on_device

                        batches = _prefetch_on_device(loader, lambda b: model.prepare(b, args.device), args.device)
                        step = lambda b: b  # noqa: E731
                    else:
                        step = lambda b: model.prepare(b, args.device)  # noqa: E731
                    torch.cuda.synchronize()
                    start, count, first = time.perf_counter(), 0, None
                    for batch in batches:
                        count += len(step(batch))
                        if first is None:  # steady state: the clock restarts once the workers are up
                            torch.cuda.synchronize()
                            first, count = time.perf_counter(), 0
                    torch.cuda.synchronize()
                    end = time.perf_counter()
                    print(f"{route} route input only, {name:15}", rate(count, end - first),
                          f"after a first batch at {first - start:.2f} s")
            model.decode = "workers"


if __name__ == "__main__":
    main()
