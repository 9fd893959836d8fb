"""Speed of the ImageNet preset at full size, with random weights (speed does not depend on them).

    python benchmarks/speed_imagenet.py                      # CPU: batch 2, fp32
    python benchmarks/speed_imagenet.py --device cuda --batch 16 --bf16 --channels-last --compile

One optimiser step of the paper's preset at its last stage (x and the MAE at 256 px, Inception-v3
at 299 and ViT-S at 224, both sources, the diversity loss and, with random statistics, the
distribution loss) is timed after warm-up. The step's floating-point operations are counted once
with torch.utils.flop_counter, so achieved TFLOP/s = FLOPs / time; the device's peak is measured in
the same run with a large matmul in the same precision. Prints a table and writes JSON. The stored
results in benchmarks/results/speed_imagenet_*.json were measured with the MAE at 224 px (196
patches; 256 at 256 px), before it was built at the paper's size.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from cag_lib import bench
from cag_lib.bench import matmul_peak, sync
from cag_lib.generate import generate
from cag_lib.imagenet import imagenet_preset


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=None, help="images per step (default: 2 on CPU, 16 on a GPU)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the sources and the MAE (bench.compile_networks)")
    p.add_argument("--json", default="outputs/speed_imagenet.json")
    a = p.parse_args(argv)
    bench.set_threads(a.threads)
    device = torch.device(a.device)
    batch = a.batch or (16 if device.type == "cuda" else 2)
    b = bench.random_imagenet_bundle(device)
    for c in (*b.classifiers, b.mae):
        if a.channels_last:
            c.to(memory_format=torch.channels_last)
    if a.compile:
        bench.compile_networks(b)
    cfg = imagenet_preset(b, resolutions=(256,), progress=False, autocast="bf16" if a.bf16 else "",
                          final_masks=1)
    targets = list(range(batch))
    generate(b, targets, replace(cfg, steps=2))                        # warm-up (and compilation)
    sync(device)
    res = generate(b, targets, replace(cfg, steps=a.steps))
    sync(device)
    ms = res.seconds / a.steps * 1000
    flops = bench.step_flops(b, cfg, batch)
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    peak = matmul_peak(device, dtype, n=4096 if device.type == "cuda" else 1024, reps=10 if device.type == "cuda" else 3)
    row = {"device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
           "batch": batch, "precision": "bf16 autocast" if a.bf16 else "fp32", "channels_last": a.channels_last,
           "compile": a.compile, "ms_per_step": round(ms, 1), "images_per_s": round(batch / ms * 1000, 3),
           "gflop_per_step": round(flops / 1e9, 1), "achieved_tflops": round(flops / ms / 1e9, 3),
           "matmul_peak_tflops": round(peak, 3), "fraction_of_peak": round(flops / ms / 1e9 / peak, 3),
           "seconds_per_image_2000_steps": round(ms * 2000 / 1000 / batch, 1)}
    for k, v in row.items():
        print(f"{k:>30}: {v}")
    bench.write_report(a.json, row)


if __name__ == "__main__":
    main()
