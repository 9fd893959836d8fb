"""How far the project's stored numbers move when torch takes another CPU kernel path, and the
tolerances that follow from it.

A CPU with other vector instructions (AVX-512 or only AVX2, AMX or not) runs other kernels, which
round differently. This script runs the kernel-sensitive checks once per kernel path on this
machine, each in a fresh process with the path's environment, and keeps the spread:

    python scripts/kernel_spread.py runs    # the seeded reference runs  -> tests/data/kernel_spread.json
    python scripts/kernel_spread.py panel   # the stored sample sets re-scored -> the same file
    python scripts/kernel_spread.py smoke   # every chapter's smoke metrics -> notebooks/baselines/kernel_spread.json
    python scripts/kernel_spread.py smoke --apply   # then set the smoke baselines' tolerances from it
    python scripts/kernel_spread.py full [--apply]  # after make book: its numbers next to the stored ones

A path's entries are replaced when it is measured again and kept otherwise, so a spread measured
on another machine (e.g. "earlier CPU": the stored numbers' own machine) stays in the record.
Every tolerance is MARGIN times the largest spread seen, or a stated floor, whichever is larger.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS_SPREAD = ROOT / "tests" / "data" / "kernel_spread.json"
SMOKE_SPREAD = ROOT / "notebooks" / "baselines" / "kernel_spread.json"

# name -> environment: torch's own kernels (ATen), oneDNN's (convolutions) and MKL's (matmuls) each
# told to use at most these instructions
PATHS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
MARGIN = 5          # tolerance = MARGIN x the largest spread measured (at least the floor)
RUN_FLOOR = 1e-6    # a difference below this is float32 rounding of a value near 1
PANEL_FLOOR = 1e-7
COUNT_FLOOR = 1.5e-3  # accuracy, precision, recall on the stored sets' 1,000 images: one image may flip


def panel_floor(metric: str) -> float:
    return COUNT_FLOOR if metric.split("_")[0] in ("acc", "precision", "recall") else PANEL_FLOOR


def tolerance(spreads, floor: float, margin: float = MARGIN) -> float:
    return float(max(margin * max(spreads, default=0.0), floor))


def raised(stated: float, seen) -> float:
    """A baseline's tolerance: the stated one, or MARGIN x the range of the values seen if larger."""
    return max(stated, round(MARGIN * (max(seen) - min(seen)) + 5e-5, 4))


def on_path(path: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **PATHS[path]}
    print(f"[{path}] {' '.join(cmd)}", flush=True)
    return subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, check=check)


def machine() -> dict:
    import torch
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return {"cpu": model, "native capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "python": platform.python_version()}


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, record: dict) -> None:
    path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    print("wrote", path.relative_to(ROOT))


def merged(old: dict, new: dict) -> dict:
    """{path: value} of old, with new's paths replacing theirs."""
    return {**old, **new}


# ---- the seeded reference runs (tests/reference_runs.py) ----------------------------------------

def measure_runs(paths: list[str]) -> dict:
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_runs import MEASURES, STORE, differences
    ref = torch.load(STORE, weights_only=True)
    spread = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            on_path(p, "tests/reference_runs.py", "--save", f"{tmp}/{p}.pt")
            for run, diffs in differences(torch.load(f"{tmp}/{p}.pt", weights_only=True), ref).items():
                for key, d in diffs.items():
                    spread.setdefault(run, {}).setdefault(key, {})[p] = d
    record = load(RUNS_SPREAD)
    runs = record.get("reference_runs", {})
    for run, keys in spread.items():
        for key, by_path in keys.items():
            entry = runs.setdefault(run, {}).setdefault(key, {})
            entry["measure"] = MEASURES[key]
            entry["spread"] = merged(entry.get("spread", {}), by_path)
            entry["tol"] = tolerance(entry["spread"].values(), RUN_FLOOR)
    record["reference_runs"] = runs
    return record


def earlier(old_store: Path) -> dict:
    """The differences between an earlier recording of the runs (another machine's) and the stored
    ones, as the path "earlier CPU" (the keys both have)."""
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_runs import STORE, difference
    old, ref = torch.load(old_store, weights_only=True), torch.load(STORE, weights_only=True)
    record = load(RUNS_SPREAD)
    for run, outs in old.items():
        for key, v in outs.items():
            entry = record["reference_runs"][run][key]
            entry["spread"]["earlier CPU"] = difference(key, v, ref[run][key])
            entry["tol"] = tolerance(entry["spread"].values(), RUN_FLOOR)
    return record


# ---- the stored sample sets re-scored (tests/test_panel.py) -------------------------------------

def rescore(out: Path) -> None:
    """Every stored set's numbers as this process's kernels give them, into `out` (JSON)."""
    import torch

    from cag_lib.panel import load_judges, load_sample_set, reference_features, results_dir, score_set
    from cag_lib.zoo import load_bundle
    torch.set_num_threads(1)
    report = json.loads((results_dir() / "panel_fmnist.json").read_text())
    judges = load_judges(load_bundle("fmnist"))
    refs = reference_features(judges)
    scores = {}
    for name in report["rows"]:
        x, y, _ = load_sample_set(name)
        scores[name] = score_set(judges, x, y, refs)
    out.write_text(json.dumps(scores))


def measure_panel(paths: list[str]) -> dict:
    from cag_lib.panel import results_dir
    stored = json.loads((results_dir() / "panel_fmnist.json").read_text())["rows"]
    record = load(RUNS_SPREAD)
    panel = record.setdefault("panel_rescore", {})
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            on_path(p, __file__, "_rescore", f"{tmp}/{p}.json")
            scores = json.loads(Path(f"{tmp}/{p}.json").read_text())
            worst: dict = {}
            for name, judged in scores.items():
                for judge, numbers in judged.items():
                    for metric, v in numbers.items():
                        d = abs(v - stored[name][judge][metric])
                        worst[metric] = max(worst.get(metric, 0.0), d)
            for metric, d in worst.items():
                entry = panel.setdefault(metric, {"measure": "largest absolute difference over sets and judges"})
                entry["spread"] = merged(entry.get("spread", {}), {p: d})
                entry["tol"] = tolerance(entry["spread"].values(), panel_floor(metric))
    return record


# ---- the chapters' smoke metrics (scripts/build_book.py --smoke) ---------------------------------

def measure_smoke(paths: list[str], only: list[str] | None = None) -> dict:
    record = load(SMOKE_SPREAD)
    values = record.setdefault("values", {})
    for p in paths:
        started = time.time()
        on_path(p, "scripts/build_book.py", "--smoke", "--no-build", *(["--only", *only] if only else []),
                check=False)   # it fails where a number leaves its old tolerance: that is what is measured
        outputs = sorted((ROOT / "_build" / "site" / "outputs").glob("*/metrics.json"))
        stale = [f.parent.name for f in outputs if f.stat().st_mtime < started]
        if stale or not outputs:
            raise SystemExit(f"[{p}] no fresh metrics.json from {stale or 'any chapter'}: a chapter failed")
        for f in outputs:   # the chapter's keys now, each with its other paths' values; dropped keys go
            old = values.get(f.parent.name, {})
            values[f.parent.name] = {key: {**old.get(key, {}), p: v}
                                     for key, v in json.loads(f.read_text()).items() if not key.endswith("seconds")}
    return record


def apply_smoke(record: dict) -> None:
    """Each smoke baseline's tolerance: MARGIN x the key's spread over the measured paths (its range
    of values, the baseline's own value included), where that is more than the stated tolerance."""
    for nb, keys in record["values"].items():
        path = ROOT / "notebooks" / "baselines" / f"{nb}.smoke.json"
        base = json.loads(path.read_text())
        for key, ref in base.items():
            by_path = keys.get(key, {})
            if not by_path:
                continue
            ref["tol"] = raised(ref["tol"], [*by_path.values(), ref["value"]])
        path.write_text(json.dumps(base, indent=2) + "\n")
        print("tolerances set in", path.relative_to(ROOT))


# ---- the chapters' full runs (scripts/build_book.py, make book) ---------------------------------
# A full run is hundreds of steps long: on another CPU its pictures are other draws of the same
# sampler, so an accuracy on its n pictures moves by sampling noise, not by rounding. Such a key's
# tolerance is at least three standard errors of the difference of two such accuracies.
NO_CHECK = 0.35     # a tolerance this wide on a proportion checks nothing
NOT_GENERATED = ("rec_judge_acc", "zero_shot", "real scenes", "MAE g(real", "diffusion classifier|")


def images_per_row(nb: str) -> int:
    """per_class x 10 classes, from the chapter's parameters cell."""
    cells = json.loads((ROOT / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
    params = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    per_class = next(int(line.split("=")[1].split("#")[0]) for line in params.splitlines()
                     if line.startswith("per_class"))
    return per_class * 10


def sampling_tolerance(p: float, n: int) -> float:
    p = min(max(p, 0.1), 0.9)    # a proportion at 0 or 1 on a few images still moves on other draws
    return round(3 * (2 * p * (1 - p) / n) ** 0.5, 3)


def measure_full(record: dict) -> dict:
    """The last full run's metrics (_build/site/outputs, this machine) next to the stored full
    baselines (their own machine: "earlier CPU")."""
    full = record.setdefault("full", {})
    for f in sorted((ROOT / "_build" / "site" / "outputs").glob("*/metrics.json")):
        base_path = ROOT / "notebooks" / "baselines" / f"{f.parent.name}.full.json"
        base = json.loads(base_path.read_text()) if base_path.exists() else {}
        measured = json.loads(f.read_text())
        if set(base) - set(measured):   # a smoke run writes fewer numbers than the full baseline has
            raise SystemExit(f"{f} lacks {sorted(set(base) - set(measured))[:3]}: not a full run's "
                             "output; run make book first")
        for key, v in measured.items():
            if key in base:
                entry = full.setdefault(f.parent.name, {}).setdefault(key, {})
                entry.setdefault("earlier CPU", base[key]["value"])
                entry["native"] = v
    return record


def apply_full(record: dict) -> None:
    """An accuracy of generated pictures: at least three standard errors of a difference at the
    chapter's n (a key whose tolerance would reach NO_CHECK is no check and leaves the baseline);
    any other key: MARGIN x its spread, where that is more than the stated tolerance."""
    for nb, keys in record["full"].items():
        path = ROOT / "notebooks" / "baselines" / f"{nb}.full.json"
        base, n = json.loads(path.read_text()), images_per_row(nb)
        generated = nb.split("_")[0] not in ("ch1", "ch10")   # those two judge real or stored images
        for key, seen in keys.items():
            if key not in base:
                continue
            if generated and key.endswith("_acc") and not key.startswith(NOT_GENERATED):
                tol = sampling_tolerance(sum(seen.values()) / len(seen), n)
                if tol >= NO_CHECK:
                    print(f"{nb}: {key} on {n} pictures per row is no regression check (±{tol}): dropped")
                    del base[key]
                    continue
                base[key]["tol"] = max(base[key]["tol"], tol)
            else:
                base[key]["tol"] = raised(base[key]["tol"], seen.values())
        path.write_text(json.dumps(base, indent=2) + "\n")
        print("tolerances set in", path.relative_to(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["runs", "panel", "smoke", "full", "earlier", "_rescore"])
    p.add_argument("file", nargs="?", type=Path, help="earlier: an earlier reference_runs.pt; _rescore: out")
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    p.add_argument("--apply", action="store_true", help="smoke: set the baselines' tolerances")
    p.add_argument("--only", nargs="+", help="smoke: these chapters (default: all)")
    a = p.parse_args(argv)
    if a.what == "_rescore":
        rescore(a.file)
        return 0
    if a.what == "full":   # after `make book`: reads its outputs, runs nothing
        record = measure_full(load(SMOKE_SPREAD)) if not a.apply else load(SMOKE_SPREAD)
        save(SMOKE_SPREAD, record)
        if a.apply:
            apply_full(record)
        return 0
    if a.what == "smoke":
        record = measure_smoke(a.paths, a.only) if not a.apply else load(SMOKE_SPREAD)
        record["margin"], record["machine"] = MARGIN, machine()
        save(SMOKE_SPREAD, record)
        if a.apply:
            apply_smoke(record)
        return 0
    record = {"runs": measure_runs, "panel": measure_panel}[a.what](a.paths) if a.what != "earlier" \
        else earlier(a.file)
    record |= {"margin": MARGIN, "paths": PATHS, "machine": machine()}
    save(RUNS_SPREAD, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
