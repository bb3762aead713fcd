"""Does a JPEG decoder thread run beside the network's forward passes? (CUDA only; about a minute on an H100)

A thread decodes one batch of JPEGs again and again on a stream of its own, with nvImageCodec on the hardware JPEG
engines (``decode="nvjpg"``) or torchvision's nvJPEG on the CUDA cores (``decode="device"``), while the main thread
runs ResNet-50 forward passes (batch 256, bf16, channels-last) on another stream, in three ways:

* ``eager``: launched op by op from Python, as the extraction loop does;
* ``eager+swi``: the same with ``sys.setswitchinterval(1e-4)``, so a waiting thread gets the GIL 50x sooner;
* ``graph``: replayed from a CUDA graph, so the main thread queues a few launches and then waits with the GIL
  released.

The first H100 probe saw the nvjpg decoder finish no batch beside eager forward passes. If it reaches most of its
solo rate beside ``graph``, the hardware engines do run beside the network and the decoder thread was starving for
the GIL (nvImageCodec re-takes it once per image); if it stays near zero there too, the decode waits for the
device's queued work. Record the solo rates, and per way the forward and decoder images/s.

  python bench/extraction_decode_overlap.py --device cuda            # needs cortexbench[nvjpg] for the nvjpg rows
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--passes", type=int, default=100, help="forward passes per window")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=425)
    args = parser.parse_args(argv)
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        sys.exit("extraction_decode_overlap.py measures CUDA streams and needs --device cuda on a machine with CUDA")
    warnings.simplefilter("ignore", DeprecationWarning)
    from extraction_resnet50 import source_images
    from torchvision.io import ImageReadMode, decode_jpeg

    from cortexbench.extraction import EncodedBatch, _decode_nvjpg, nvjpg_decoder
    from cortexbench.plugins.models.timm_models.model import build_untrained

    device, passes, size = args.device, args.passes, args.batch_size
    model = build_untrained("resnet50", 0, granularity="blocks")
    network = model.network(device)
    torch.backends.cudnn.benchmark = True
    x = torch.randn(size, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    side = torch.cuda.Stream(device)
    amp = {"device_type": "cuda", "dtype": torch.bfloat16, "cache_enabled": False}

    def eager(k: int = passes) -> None:
        with torch.cuda.stream(side), torch.inference_mode(), torch.autocast(**amp):
            for _ in range(k):
                network(x)
        torch.cuda.synchronize(device)

    eager(5)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.autocast(**amp), torch.cuda.graph(graph):
        network(x)
    torch.cuda.synchronize(device)

    def replay(k: int = passes) -> None:
        with torch.cuda.stream(side):
            for _ in range(k):
                graph.replay()
        torch.cuda.synchronize(device)

    with tempfile.TemporaryDirectory() as tmp:
        blobs = [p.read_bytes() for p in source_images(size, args.image_size, Path(tmp) / "jpegs")]
        batch = EncodedBatch.collate(blobs)
        decoders = {"device": lambda: decode_jpeg(batch.tensors(), mode=ImageReadMode.RGB, device=device)}
        try:
            nvjpg_decoder(device)
            decoders["nvjpg"] = lambda: _decode_nvjpg(batch, device)
        except Exception as err:  # noqa: BLE001 - reported; the torchvision rows still run
            print(f"decode='nvjpg' not measured: {err}")

        def decoding(decode, stop: threading.Event, stamps: list, errors: list, priority: int = 0) -> None:
            stream = torch.cuda.Stream(device, priority=priority)
            try:
                with torch.cuda.stream(stream), torch.inference_mode():
                    while not stop.is_set():
                        model.preprocessing.resize_tensors(decode())
                        stream.synchronize()
                        stamps.append(time.perf_counter())
            except BaseException as err:  # noqa: BLE001 - raised in the main thread
                errors.append(err)

        def window(decode, forward, interval: float | None, priority: int = 0) -> tuple[float, float]:
            """(forward images/s, decoder images/s) while both run; forward None: the decoder alone. ``priority``
            -1 puts the decoder's stream above the network's (CUDA stream priorities)."""
            old = sys.getswitchinterval()
            stop, stamps, errors = threading.Event(), [], []
            worker = threading.Thread(target=decoding, args=(decode, stop, stamps, errors, priority))
            worker.start()
            time.sleep(0.5)
            if interval is not None:
                sys.setswitchinterval(interval)
            start = time.perf_counter()
            if forward is None:
                time.sleep(1.0)
            else:
                forward()
            end = time.perf_counter()
            sys.setswitchinterval(old)
            stop.set()
            worker.join()
            if errors:
                raise errors[0]
            done = sum(start <= stamp <= end for stamp in stamps)
            return (passes * size / (end - start) if forward else 0.0), done * size / (end - start)

        print(f"ResNet-50 batch {size}, bf16, {torch.cuda.get_device_name(device)}; decoder: decode + resize of "
              f"{size} JPEGs of {args.image_size} px per step, on its own stream and thread")
        start = time.perf_counter()
        eager()
        print(f"forward eager alone   {passes * size / (time.perf_counter() - start):9,.0f} img/s")
        start = time.perf_counter()
        replay()
        print(f"forward graph alone   {passes * size / (time.perf_counter() - start):9,.0f} img/s")
        for name, decode in decoders.items():
            print(f"decoder {name:6s} alone  {window(decode, None, None)[1]:9,.0f} img/s")
            for way, forward, interval, priority in (("eager", eager, None, 0), ("eager+swi", eager, 1e-4, 0),
                                                     ("graph", replay, None, 0), ("eager+prio", eager, None, -1),
                                                     ("graph+prio", replay, None, -1)):
                rate, decoded = window(decode, forward, interval, priority)
                print(f"decoder {name:6s} beside {way:10s}: forward {rate:9,.0f} img/s, decoder {decoded:9,.0f} img/s")


if __name__ == "__main__":
    main()
