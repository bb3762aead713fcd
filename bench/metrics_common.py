"""Shared bits of the metric benchmarks: device choice, synchronised timing, and one-line results.

Every figure a script prints starts with ``RESULT``; the lines starting with ``RECORD`` are the ones the docs keep.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Iterator

import torch


def parser(description: str, sizes: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu: a sanity check)")
    p.add_argument("--size", default="small", choices=sizes, help="problem size preset (default small)")
    p.add_argument("--seed", type=int, default=0)
    return p


def device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA GPU visible to PyTorch")
    return torch.device(name)


def describe(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)}, torch {torch.__version__})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__})"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@contextlib.contextmanager
def timer(dev: torch.device, out: dict, key: str) -> Iterator[None]:
    """Wall time of the block, with the device synchronised before and after."""
    sync(dev)
    start = time.perf_counter()
    yield
    sync(dev)
    out[key] = time.perf_counter() - start


def result(text: str) -> None:
    print(f"RESULT {text}", flush=True)


def record(text: str) -> None:
    print(f"RECORD {text}", flush=True)


def peak_memory(dev: torch.device) -> str:
    if dev.type != "cuda":
        return "n/a on cpu"
    return f"{torch.cuda.max_memory_allocated(dev) / 2 ** 30:.1f} GiB"
