"""The ImageNet preset's step on a GPU, swept in one run: batch size x precision, layout and compile.

    python benchmarks/speed_gpu_sweep.py                               # a GPU: the sweep -> JSON
    python benchmarks/speed_gpu_sweep.py --tiny --device cpu --batches 2 4 --variants fp32 bf16
                                                                        # the same script, small and quick

Random weights (speed does not depend on them), the paper's preset at its last stage (x and the
MAE at 256 px, Inception-v3 at 299 and ViT-S at 224, both sources, the diversity loss and, with
random statistics, the distribution loss). For every batch size and variant: milliseconds per step
(median of --rounds rounds of --steps steps, after warm-up and compilation), the step's FLOPs
(counted once per batch by torch.utils.flop_counter), TFLOP/s, the fraction of the matmul peak
measured in the same run in that precision, images per second and seconds per image at 2,000
steps. Eager variants run first at every batch size; the compiled ones run at the batch size where
bf16 was fastest (each compilation costs minutes). A batch that does not fit in memory is recorded
as such. The best row gets torch.profiler's top operators. The JSON is rewritten after every row,
so a stopped run keeps what it measured; --budget-s stops starting new rows.

Variants: fp32 (fused attention, default layout); bf16 (autocast, channels_last); bf16+compile
(torch.compile of the networks, mode "default"); bf16+graphs (mode "reduce-overhead": CUDA graphs).
--tiny uses the Fashion-MNIST bundle and its recipe instead, to test this script on a CPU.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile

from cag_lib import bench
from cag_lib.bench import matmul_peak, sync
from cag_lib.generate import GenerateConfig, generate
from cag_lib.imagenet import imagenet_preset
from cag_lib.zoo import load_bundle

VARIANTS = {  # name -> (config changes, channels_last, torch.compile mode or None)
    "fp32": ({}, False, None),
    "bf16": ({"autocast": "bf16"}, True, None),
    "bf16+compile": ({"autocast": "bf16"}, True, "default"),
    "bf16+graphs": ({"autocast": "bf16"}, True, "reduce-overhead"),
}


def make_bundle(tiny: bool, device: torch.device, channels_last: bool, compile_mode: str | None):
    """A fresh bundle (random weights for ImageNet) and its last-stage config."""
    if tiny:
        b = load_bundle("fmnist", device=device)
        cfg = GenerateConfig(resolutions=(b.image_size,), progress=False, final_masks=1)
    else:
        b = bench.random_imagenet_bundle(device)
        cfg = imagenet_preset(b, resolutions=(256,), progress=False, final_masks=1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for c in b.classifiers:
        c.to(memory_format=fmt)
    return (bench.compile_networks(b, compile_mode) if compile_mode else b), cfg


def measure(bundle, cfg, batch: int, steps: int, rounds: int, device) -> float:
    """Milliseconds per step: warm-up (and compilation), then the median of the rounds."""
    targets = list(range(batch))
    generate(bundle, targets, replace(cfg, steps=3))
    times = []
    for r in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        generate(bundle, targets, replace(cfg, steps=steps, seed=r))
        sync(device)
        times.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(times)


def top_operators(bundle, cfg, batch: int, device, top: int = 10) -> list:
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        generate(bundle, list(range(batch)), replace(cfg, steps=3))
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: -getattr(e, key))[:top]
    return [{"op": e.key, "self_ms_per_step": round(getattr(e, key) / 1000 / 3, 2)} for e in events]


def run_row(a, device, name: str, batch: int, peaks: dict, flops: dict) -> dict:
    changes, channels_last, mode = VARIANTS[name]
    row = {"variant": name, "batch": batch}
    try:
        b, cfg = make_bundle(a.tiny, device, channels_last, mode)
        cfg = replace(cfg, **changes)
        if batch not in flops:
            flops[batch] = bench.step_flops(b, cfg, batch)
        t0 = time.perf_counter()
        ms = measure(b, cfg, batch, a.steps, a.rounds, device)
        dtype = torch.bfloat16 if changes.get("autocast") else torch.float32
        tflops = flops[batch] / ms / 1e9
        row.update(ms_per_step=round(ms, 2), images_per_s=round(batch / ms * 1000, 2),
                   gflop_per_step=round(flops[batch] / 1e9, 3), achieved_tflops=round(tflops, 3),
                   fraction_of_peak=round(tflops / peaks[dtype], 4),
                   seconds_per_image_2000_steps=round(ms * 2000 / 1000 / batch, 3),
                   seconds_measuring=round(time.perf_counter() - t0, 1))
    except torch.OutOfMemoryError:
        row["out_of_memory"] = True
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(row, flush=True)
    return row


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="the fmnist bundle instead of ImageNet (a CPU test)")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--steps", type=int, default=5, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=480, help="start no new row after this many seconds")
    p.add_argument("--json", default="outputs/speed_gpu_sweep.json")
    a = p.parse_args(argv)
    bench.set_threads(a.threads)
    device, start = torch.device(a.device), time.perf_counter()
    big = device.type == "cuda"
    peaks = {dt: matmul_peak(device, dt, n=8192 if big else 512, reps=20 if big else 3)
             for dt in (torch.float32, torch.bfloat16)}
    report = {"device": torch.cuda.get_device_name(device) if big else f"cpu ({torch.get_num_threads()} threads)",
              "preset": "fmnist CaG full (tiny)" if a.tiny else "ImageNet preset, last stage (256 px), random weights",
              "matmul_peak_tflops": {str(k).split(".")[-1]: round(v, 2) for k, v in peaks.items()}, "rows": []}
    flops: dict = {}

    def sweep(plan) -> bool:
        for i, (variant, batch) in enumerate(plan):
            if time.perf_counter() - start > a.budget_s:
                report["stopped"] = f"budget of {a.budget_s} s reached; {len(plan) - i} rows not started"
                return False
            report["rows"].append(run_row(a, device, variant, batch, peaks, flops))
            bench.write_report(a.json, report)
        return True

    eager = [v for v in a.variants if VARIANTS[v][2] is None]
    if sweep([(v, bs) for bs in a.batches for v in eager]):     # then the compiled ones at bf16's best batch
        done = [r for r in report["rows"] if r["variant"] == "bf16" and "ms_per_step" in r]
        best = max(done, key=lambda r: r["images_per_s"])["batch"] if done else a.batches[0]
        sweep([(v, best) for v in a.variants if VARIANTS[v][2] is not None])
    measured = [r for r in report["rows"] if "ms_per_step" in r]
    if measured:
        best = max(measured, key=lambda r: r["achieved_tflops"])
        b, cfg = make_bundle(a.tiny, device, *VARIANTS[best["variant"]][1:])
        report["best"] = {**best, "top_operators": top_operators(b, replace(cfg, **VARIANTS[best["variant"]][0]),
                                                                 best["batch"], device)}
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(f"wrote {bench.write_report(a.json, report)}")


if __name__ == "__main__":
    main()
