"""The full fmnist recipe on the CPU, one speed-up at a time: milliseconds per step of each,
measured side by side in one run; the 80-image run before and after; the profiler's top operators
before and after.

    python benchmarks/speed_cpu.py [--batch 80] [--steps 20] [--rounds 3] [--json PATH]
    python benchmarks/speed_cpu.py --table [--json PATH]    # the speed page's tables, from the JSON

The variants are cumulative and timed in alternating rounds (each variant once per round), so that a
slow patch of the machine hits all of them; each reports the median of its rounds:

    before            fp32, the sources' convolutions in the default memory format, fused attention
    + channels_last   the sources' convolutions channels_last (what load_bundle does)
    + bf16 autocast   the models under torch.autocast(bfloat16); attention still fused (SDPA)
    + eager attention q k^T, softmax and v as three ops (GenerateConfig(attention="auto") under
                      autocast on a CPU): the fast path, GenerateConfig(autocast="bf16")
    + torch.compile   the networks compiled by inductor (its first call, compilation included, is
                      reported apart, with an empty compile cache: what a first run pays)

bf16 is fast only on CPUs with bf16 instructions (AVX512-BF16, AMX); the report says which this
one has. Whether bf16 moves the judges is measured on 1,000 images by benchmarks/panel.py (the row
"CaG full, 250 steps, g(x), bf16"); this script adds the validation judge on its 80 images.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch._inductor.config
from torch.profiler import ProfilerActivity, profile

from cag_lib import bench
from cag_lib.generate import GenerateConfig, generate
from cag_lib.metrics import judge
from cag_lib.zoo import load_bundle

FAST = dict(autocast="bf16")           # attention="auto" picks eager attention under it
PANEL = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "panel_fmnist.json"
BF16_ROWS = ("CaG full, 250 steps, g(x)", "CaG full, 250 steps, g(x), bf16")


def memory_format(bundle, fmt: torch.memory_format):
    for c in bundle.classifiers:
        c.to(memory_format=fmt)
    return bundle


def variants(with_compile: bool) -> dict:
    """name -> (bundle, config changes); one bundle per memory format / compilation."""
    plain = memory_format(load_bundle("fmnist"), torch.contiguous_format)
    last = load_bundle("fmnist")                                  # channels_last, as loaded
    out = {"before": (plain, dict(attention="sdpa")),
           "+ channels_last": (last, dict(attention="sdpa")),
           "+ bf16 autocast": (last, dict(autocast="bf16", attention="sdpa")),
           "+ eager attention": (last, FAST)}
    if with_compile:
        out["+ torch.compile"] = (bench.compile_networks(load_bundle("fmnist")), FAST)
    return out


def ms_per_step(bundle, y, cfg) -> float:
    return generate(bundle, y, cfg).seconds / cfg.steps * 1000


def top_operators(bundle, y, cfg, steps: int = 5, top: int = 10) -> dict:
    """torch.profiler over `steps` steps at the MAE's size: wall and ATen time per step, the top
    operators by their own CPU time per step."""
    cfg = replace(cfg, steps=steps, resolutions=(bundle.mae.img_size,), final_masks=1)
    generate(bundle, y, replace(cfg, steps=2))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        res = generate(bundle, y, cfg)
        wall = (time.perf_counter() - t0) / steps * 1000
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    aten = sum(e.self_cpu_time_total for e in ops) / 1000 / steps
    ops.sort(key=lambda e: -e.self_cpu_time_total)
    return {"loop_ms_per_step": round(res.seconds / steps * 1000, 1), "wall_ms_per_step_profiled": round(wall, 1),
            "aten_self_ms_per_step": round(aten, 1),
            "top": [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1000 / steps, 2),
                     "calls_per_step": round(e.count / steps, 1)} for e in ops[:top]]}


def full_run(bundle, y, cfg) -> dict:
    """The whole recipe for these targets: seconds from the call to the pictures, and the
    validation judge on them."""
    t0 = time.perf_counter()
    res = generate(bundle, y, cfg)
    seconds = time.perf_counter() - t0
    row = judge(bundle, res.reconstructions, y, 2000)
    return {"seconds": round(seconds, 1), "judge_acc": round(row["judge_acc"], 3), "fd": round(row["fd"], 2)}


def tables(report: dict, panel: dict) -> str:
    """The speed page's tables: the variants, the 80-image run, bf16 on the panel, the top operators."""
    out = ["| variant (cumulative) | ms per step | gain over the row above | speed-up over before |",
           "|---|---|---|---|"]
    for r in report["variants"]:
        gain = f"{r['gain_over_previous']:.2f}x" if r["gain_over_previous"] else ""
        first = f" (first call {r['first_call_seconds']} s)" if "first_call_seconds" in r else ""
        out.append(f"| {r['variant']}{first} | {r['ms_per_step']} | {gain} | {r['speedup_over_before']:.2f}x |")
    f = report["full_run"]
    out += ["", (f"| {f['images']} images, {f['steps']} steps | seconds | validation judge acc "
                 f"(N = {f['images']}) | FD (validation judge) |"), "|---|---|---|---|"]
    out += [f"| {k} | {f[k]['seconds']} | {f[k]['judge_acc']:.3f} | {f[k]['fd']:.2f} |" for k in ("before", "after")]
    out += ["", "| N = 1,000 | validation judge acc | test judges acc (range) | test judges FD (range) |",
            "|---|---|---|---|"]
    for name in BF16_ROWS:
        row, t = panel["rows"][name], panel["rows"][name]["test_mean"]      # the panel's own summary
        out.append(f"| {'bf16' if name.endswith('bf16') else 'fp32'} | {row['validation']['acc']:.3f} | "
                   f"{t['acc']:.3f} ({t['acc_min']:.3f}–{t['acc_max']:.3f}) | "
                   f"{t['fd']:.1f} ({t['fd_min']:.1f}–{t['fd_max']:.1f}) |")
    before, after = report["profile"]["before"], report["profile"]["after"]
    out += ["", "| | before: operator | ms per step | after: operator | ms per step |", "|---|---|---|---|---|"]
    for i, (b, a) in enumerate(zip(before["top"], after["top"])):
        out.append(f"| {i + 1} | `{b['op'].removeprefix('aten::')}` | {b['self_ms_per_step']} "
                   f"| `{a['op'].removeprefix('aten::')}` | {a['self_ms_per_step']} |")
    out.append(f"| | all ATen operators | {before['aten_self_ms_per_step']} | all ATen operators | "
               f"{after['aten_self_ms_per_step']} |")
    return "\n".join(out)


def main(argv=None):
    p = bench.parser(__doc__)
    p.add_argument("--batch", type=int, default=80)
    p.add_argument("--steps", type=int, default=20, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--full-steps", type=int, default=GenerateConfig().steps, help="the 80-image run's steps")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", default="outputs/speed_cpu_fmnist.json")
    p.add_argument("--table", action="store_true", help="print the speed page's tables from --json")
    a = p.parse_args(argv)
    if a.table:
        print(tables(json.loads(Path(a.json).read_text()), json.loads(PANEL.read_text())))
        return
    torch._inductor.config.force_disable_caches = True           # a cold compile, as a first run's
    bench.set_threads(a.threads)
    y = torch.arange(a.batch) % 10
    base = GenerateConfig(steps=a.steps, progress=False)
    runs = variants(not a.no_compile)
    compile_s = {}
    for name, (b, changes) in runs.items():                          # warm-up (and compilation)
        t0 = time.perf_counter()
        generate(b, y, replace(base, steps=len(base.resolutions), **changes))
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in runs}
    for r in range(a.rounds):
        for name, (b, changes) in runs.items():
            times[name].append(ms_per_step(b, y, replace(base, seed=r, **changes)))
    rows, prev = [], None
    for name, ts in times.items():
        ms = statistics.median(ts)
        rows.append({"variant": name, "ms_per_step": round(ms, 1), "rounds_ms": [round(t, 1) for t in ts],
                     "gain_over_previous": round(prev / ms, 2) if prev else None,
                     "speedup_over_before": round(rows[0]["ms_per_step"] / ms, 2) if rows else 1.0})
        prev = ms
        print(f"{name:>18}: {ms:7.1f} ms/step  x{rows[-1]['speedup_over_before']}", flush=True)
    if "+ torch.compile" in compile_s:
        rows[-1]["first_call_seconds"] = round(compile_s["+ torch.compile"], 1)
    before, after = runs["before"], runs["+ eager attention"]
    profiles = {"before": top_operators(before[0], y, replace(base, **before[1])),
                "after": top_operators(after[0], y, replace(base, **after[1]))}
    full = replace(base, steps=a.full_steps)
    runs_80 = {"before": full_run(before[0], y, replace(full, **before[1])),
               "after": full_run(after[0], y, replace(full, **after[1]))}
    for k, v in runs_80.items():
        print(f"{a.batch} images, {a.full_steps} steps, {k}: {v}", flush=True)
    report = {"bundle": "fmnist", "recipe": "CaG full", "batch": a.batch, "steps_per_round": a.steps,
              "rounds": a.rounds, "threads": torch.get_num_threads(),
              "cpu_bf16": {"avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
                           "amx": torch.cpu._is_amx_tile_supported()},
              "variants": rows, "profile": profiles,
              "full_run": {"images": a.batch, "steps": a.full_steps, **runs_80,
                           "speedup": round(runs_80["before"]["seconds"] / runs_80["after"]["seconds"], 2)}}
    bench.write_report(a.json, report)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
