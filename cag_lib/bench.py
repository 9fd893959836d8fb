"""The benchmarks' shared harness: their argument parser, threads, and a JSON report that records
the machine, the versions and the command that made it.

    p = bench.parser(__doc__)            # benchmarks/*.py add their own arguments
    a = p.parse_args(argv); bench.set_threads(a.threads)
    bench.write_report(a.json, {"rows": rows})
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from .files import read_json
from .generate import generate
from .imagenet import load_imagenet_bundle


def parser(doc: str, threads: int = 2) -> argparse.ArgumentParser:
    """An ArgumentParser described by the script's docstring, with --threads."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0], epilog="\n".join(doc.split("\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=threads, help="torch CPU threads (0 = torch's default)")
    return p


def set_threads(threads: int) -> int:
    """torch's CPU threads (0 leaves torch's default); returns the number in use."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def machine() -> dict:
    """Where a number was measured."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def write_report(path, report: dict) -> Path:
    """report + {"machine", "command"} as indented JSON, written atomically (a stopped run leaves the
    old file whole)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**report, "machine": {**machine(), **report.get("machine", {})},
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n")
    tmp.replace(path)
    return path


def merged_rows(path, report: dict) -> dict:
    """report, with the rows already stored at `path` kept (report's own rows replace theirs) and the
    commands that wrote them listed in "earlier_commands": a file made by several runs says so."""
    path = Path(path)
    if not path.exists():
        return report
    old = read_json(path, "restore it (git checkout) or move it away; this run then writes a new one")
    earlier = old.get("earlier_commands", []) + ([old["command"]] if "command" in old else [])
    return {**report, "rows": {**old.get("rows", {}), **report["rows"]}, "earlier_commands": earlier}


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (timing); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 4096, reps: int = 10) -> float:
    """TFLOP/s of a large square matmul in this precision: the practical peak to compare with."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def compile_networks(bundle, mode: str = "default"):
    """The bundle's networks compiled by torch.compile, in place: each source's `forward_with_map`
    (what the sampler calls; compiling `classifier.net` would compile nothing, because the Classifier
    calls the net's forward_features and forward_head, not the net) and the MAE's two halves."""
    for c in bundle.classifiers:
        c.forward_with_map = torch.compile(c.forward_with_map, mode=mode)
    bundle.mae.forward_encoder = torch.compile(bundle.mae.forward_encoder, mode=mode)
    bundle.mae.forward_decoder = torch.compile(bundle.mae.forward_decoder, mode=mode)
    return bundle


def step_flops(bundle, cfg, batch: int, targets=None) -> float:
    """Floating-point operations of one step of `cfg` at its last stage for `batch` images of
    `targets` (default: classes 0, 1, ...), by torch's FLOP counter."""
    targets = list(targets or range(batch))[:batch]
    with FlopCounterMode(display=False) as fc:
        generate(bundle, targets, replace(cfg, steps=1, resolutions=cfg.resolutions[-1:], final_masks=1))
    return float(fc.get_total_flops())


T4_FP16_TFLOPS = 65.0    # NVIDIA's T4 datasheet: the fp16 tensor-core peak (a T4 has no bf16 units)


def t4_estimate(measured: dict, steps: int) -> tuple[float, float]:
    """Seconds per image for `steps` steps on a free Colab T4, estimated (never measured) from a
    measured GPU run of the same step (a speed_imagenet report: batch, ms_per_step, gflop_per_step,
    fraction_of_peak). Low: the T4 as fast per step as that GPU (a step held back by kernel
    launches), or at its own peak if that is slower; high: the T4 reaching the same fraction of its
    peak as that GPU did."""
    gflop = measured["gflop_per_step"] / measured["batch"]                 # per image and step
    low = max(measured["ms_per_step"] / 1e3 / measured["batch"], gflop / (T4_FP16_TFLOPS * 1e3))
    high = gflop / (T4_FP16_TFLOPS * 1e3 * measured["fraction_of_peak"])
    return steps * low, steps * high


def random_imagenet_bundle(device: torch.device):
    """The ImageNet bundle with random weights (seed 0) and random class statistics, so that the
    preset's every term runs: what speed is measured on (it does not depend on the weights)."""
    torch.manual_seed(0)
    b = load_imagenet_bundle(device=device, pretrained=False)
    dims = [c(torch.rand(1, 3, 64, 64, device=device)).features.shape[-1] for c in b.classifiers]
    b.class_stats = [(torch.randn(1000, d), torch.rand(1000, d)) for d in dims]
    return b
