"""What closes CaG's realism gap: the levers and the rivals side by side, and the bars, from the
panel's stored numbers (benchmarks/results/panel_fmnist.json).

A generator made of classifiers alone (no DDPM, DDIM or GAN inside) is chosen among the rows on the
validation judge (lowest FD in its features), and only then are the test judges read against the
bars: mean accuracy >= 0.85 with no judge below 0.80, FD at most twice the DDPM's, recall >= 0.5 and
a classification accuracy score (CAS) at least 0.8 of the DDPM's.
"""
from __future__ import annotations

from .panel import VALIDATION, _cas, _judged, change_verdict

DDPM = "DDPM, 1000 steps"
# (label, stored row, made of classifiers alone)
GAP_ROWS = (("real test images", "real", False),
            ("g(real), the MAE's reconstructions", "g(real)", False),
            ("g(real), one mask", "g(real), one mask", False),
            ("g(real), the 2 × 2-patch MAE's", "g(real), 2 x 2-patch MAE", False),
            ("g(real), mask ratio 0.5", "g(real), mask ratio 0.5", False),
            ("g(real), mask ratio 0.25", "g(real), mask ratio 0.25", False),
            ("DDPM, 1000 steps", DDPM, False),
            ("GAN", "GAN", False),
            ("CaG full (plain sources)", "CaG full, 250 steps, g(x), bf16", True),
            ("CaG full, robust sources", "CaG full, robust sources, g(x), bf16", True),
            ("CaG full, 2 × 2-patch MAE", "CaG full, 2 x 2-patch MAE, g(x), bf16", True),
            ("CaG full, mask ratio 0.5", "CaG full, mask ratio 0.5, g(x), bf16", True),
            ("CaG + BatchNorm prior", "CaG + BN prior, g(x), bf16", True),
            ("CaG, class-Gaussian start", "CaG, class-Gaussian start, g(x), bf16", True),
            ("CaG, the levers together", "CaG, levers together, g(x), bf16", True),
            ("Santurkar et al. (robust PGD)", "Santurkar et al. (robust PGD)", True),
            ("their class-Gaussian seeds alone", "class-Gaussian seeds alone", False),
            ("DeepInversion (plain ResNet)", "DeepInversion", True),
            ("classic priors, no MAE", "classic (every prior, no MAE)", True))
BARS = {"acc": 0.85, "acc_min": 0.80, "fd_ratio": 2.0, "recall": 0.5, "cas_ratio": 0.8}


def _fd_ratios(r: dict, ddpm: dict, judges: list) -> list:
    return [r[j]["fd"] / ddpm[j]["fd"] for j in judges]


def gap_table(report: dict) -> str:
    """The page's table: each lever and rival with the test judges' accuracy, FD as a multiple of the
    DDPM's in every judge's features (smallest to largest), precision, recall, CAS, and its cost."""
    rows, judges = report["rows"], list(report["test_judges"])
    ddpm = rows[DDPM]
    lines = ["| generator (N = 1,000) | classifiers only | validation acc | test acc (range) "
             "| test FD (range) | FD ÷ DDPM's | recall | CAS | s / image |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, name, alone in GAP_ROWS:
        r = rows.get(name)
        if r is None:
            continue
        val, acc, fd = _judged(r)
        ratios = _fd_ratios(r, ddpm, judges)
        t = r["test_mean"]
        cost = r.get("cost", {}).get("seconds_per_image") or r.get("while_stored", {}).get("seconds_per_image")
        lines.append(f"| {label} | {'yes' if alone else ''} | {val} | {acc} | {fd} | {min(ratios):.1f}–"
                     f"{max(ratios):.1f} | {t['recall']:.2f} | {_cas(r)} | "
                     f"{'' if cost is None else f'{cost:.3g}'} |")
    return "\n".join(lines)


def chosen_row(report: dict) -> tuple[str, str]:
    """(label, row) of the classifier-only row with the lowest FD in the validation judge's features."""
    stored = report["rows"]
    candidates = [(label, name) for label, name, alone in GAP_ROWS if alone and name in stored]
    return min(candidates, key=lambda c: stored[c[1]][VALIDATION]["fd"])


def bars(report: dict) -> dict:
    """The chosen row against each bar: {bar: (value, bar, met)}; FD's ratio is the largest over the
    test judges (a bar met by it is met in every judge's features)."""
    rows, judges = report["rows"], list(report["test_judges"])
    _, name = chosen_row(report)
    r, ddpm = rows[name], rows[DDPM]
    t = r["test_mean"]
    values = {"acc": t["acc"], "acc_min": t["acc_min"], "fd_ratio": max(_fd_ratios(r, ddpm, judges)),
              "recall": t["recall"], "cas_ratio": r["cas"] / ddpm["cas"]}
    return {k: (v, BARS[k], v <= BARS[k] if k == "fd_ratio" else v >= BARS[k]) for k, v in values.items()}


WORDS = {"acc": "mean test-judge accuracy {v:.3f} (bar {b})", "acc_min": "lowest test judge {v:.3f} (bar {b})",
         "fd_ratio": "FD {v:.1f} times the DDPM's in the least favourable judge's features (bar {b})",
         "recall": "recall {v:.2f} (bar {b})", "cas_ratio": "CAS {v:.2f} of the DDPM's (bar {b})"}


def gap_verdict(report: dict) -> str:
    """The bars, in words, for the row the validation judge chose."""
    label, _ = chosen_row(report)
    met = bars(report)
    ok = [WORDS[k].format(v=v, b=b) for k, (v, b, m) in met.items() if m]
    short = [WORDS[k].format(v=v, b=b) for k, (v, b, m) in met.items() if not m]
    text = (f"The validation judge picks **{label}** (the lowest FD in its features among the generators made of "
            f"classifiers alone). ")
    if not short:
        return text + "It meets every bar: " + "; ".join(ok) + "."
    return (text + "It falls short of " + ("every bar" if not ok else f"{len(short)} of {len(met)} bars") + ": "
            + "; ".join(short) + "." + (" It meets " + "; ".join(ok) + "." if ok else ""))


BASE = "CaG full, 250 steps, g(x), bf16"
ROBUST = "CaG full, robust sources, g(x), bf16"
SANTURKAR = "Santurkar et al. (robust PGD)"


def gap_findings(report: dict) -> str:
    """Each lever and rival against CaG with plain sources, judge by judge (panel.change_verdict),
    then the recall of each: the number the levers were meant to move."""
    rows = [(label, name) for label, name, alone in GAP_ROWS if alone and name != BASE]
    stored = report["rows"]
    recalls = [f"{label} {stored[name]['test_mean']['recall']:.2f}" for label, name in [("CaG full", BASE), *rows]
               if name in stored]
    rival = change_verdict(report, ROBUST, [(label, name) for label, name, _ in GAP_ROWS if name == SANTURKAR],
                           "CaG with robust sources")
    return (change_verdict(report, BASE, rows, "CaG with plain sources")
            + "\n\nRecall, the test judges' mean: " + ", ".join(recalls)
            + f"; the DDPM's is {stored[DDPM]['test_mean']['recall']:.2f}."
            + ("\n\nThe rival against CaG with the same robust sources:\n\n" + rival if rival else ""))


def levers_table(levers: dict) -> str:
    """The choices made on the validation judge (benchmarks/results/levers_fmnist.json): every setting
    tried, its numbers in the validation judge's features, and the one kept."""
    lines = ["| choice | setting | validation judge acc | FD | precision | recall | kept |", "|---|---|---|---|---|---|---|"]
    for group, done in levers["groups"].items():
        weights = [r.get("changes", {}).get("bn_weight") for r in done["settings"].values()]
        order = (sorted(done["settings"], key=lambda k: done["settings"][k]["changes"]["bn_weight"])
                 if all(w is not None for w in weights) else list(done["settings"]))   # weights in order
        for key in order:
            r = done["settings"][key]
            lines.append(f"| {group} | {key} | {r['acc']:.3f} | {r['fd']:.1f} | {r['precision']:.2f} | "
                         f"{r['recall']:.2f} | {'yes' if key == done.get('chosen') and len(done['settings']) > 1 else ''} |")
    return "\n".join(lines)


# the class-conditional shapes rows (benchmarks/results/shapes_conditional.json): stored row -> label
SHAPES_ROWS = {"shapes": "CaG, plain sources",
               "shapes-robust": "CaG, robust sources",
               "shapes-robust, class-Gaussian start": "CaG, robust, class-Gaussian start",
               "shapes-robust, levers together": "CaG, robust, the levers together",
               "shapes-robust, Santurkar et al.": "Santurkar et al., robust ResNet",
               "shapes-robust, Santurkar et al., ViT": "Santurkar et al., robust ViT",
               "shapes-robust, Santurkar et al., ResNet + ViT": "Santurkar et al., robust ResNet + ViT",
               "shapes-robust, Santurkar et al., twice the radius": "Santurkar et al., robust ResNet, 2 × radius",
               "shapes-robust, Santurkar et al., 200 steps": "Santurkar et al., robust ResNet, 200 steps"}
# the shapes world's judges, as the tables name them ("degraded": trained on degraded images too)
SHAPES_JUDGES = {VALIDATION: "ConvNeXt (validation)", "judge_cnn": "CNN, light", "judge_resnet_d": "ResNet-D, degraded",
                 "judge_mixer": "Mixer, degraded", "judge_cnn_degrade": "CNN, degraded"}


def degraded_judges(report: dict, manifest: dict) -> list:
    """The shapes test judges trained on degraded (blurred, low-contrast, noisy) images."""
    return [j for j in report["test_judges"] if manifest[j]["training"]["config"]["augment"] == "degrade"]


def shapes_table(report: dict, manifest: dict) -> str:
    """Each shapes row's accuracy by the validation judge (the only one looked at when choosing) and by
    every test judge, the mean of the test judges trained on degraded images, the chosen row marked."""
    judges, degraded = list(report["test_judges"]), degraded_judges(report, manifest)
    lines = ["| recipe, sources | " + " | ".join(SHAPES_JUDGES.get(j, j) for j in [VALIDATION, *judges])
             + " | mean, degraded | chosen |",
             "|---|---|" + "---|" * len(judges) + "---|---|"]
    for name, label in SHAPES_ROWS.items():
        r = report["rows"][name]
        mean = sum(r["test_judges"][j] for j in degraded) / len(degraded)
        lines.append(f"| {label} | {r['judge_acc']:.3f} | "
                     + " | ".join(f"{r['test_judges'][j]:.3f}" for j in judges)
                     + f" | {mean:.3f} | {'yes' if name == report['chosen'] else ''} |")
    return "\n".join(lines)


CORRUPTION_WORDS = {"clean": "as they are", "blurred (sigma 2 px)": "Gaussian blur, σ = 2 pixels",
                    "noisy (sigma 0.15)": "Gaussian noise, σ = 0.15 of the 0–1 pixel range"}


def shapes_judge_card(report: dict) -> str:
    """Each shapes judge's accuracy on real test shapes, clean, blurred and noisy."""
    card = report["judge_card"]
    corruptions = list(next(iter(card.values())))
    lines = ["| judge | " + " | ".join(f"real shapes, {CORRUPTION_WORDS.get(c, c)}" for c in corruptions) + " |",
             "|---|" + "---|" * len(corruptions)]
    for judge, accs in card.items():
        lines.append(f"| {SHAPES_JUDGES.get(judge, judge)} | " + " | ".join(f"{accs[c]:.3f}" for c in corruptions) + " |")
    return "\n".join(lines)
