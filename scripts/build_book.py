"""Execute every chapter notebook with papermill, check its numbers against stored baselines, and
build the book from the executed copies.

    python scripts/build_book.py            # the main job: full parameters, the book in _build/site/_build/html
    python scripts/build_book.py --smoke    # CI: small parameters, compared with notebooks/baselines/*.smoke.json
    python scripts/build_book.py --smoke --only ch2_eq1 --no-build
    python scripts/build_book.py --smoke --update-baselines   # after a deliberate change; review the diff

Steps:
1. Stage the book in _build/site (_config.yml, _toc.yml, book/), the pages' {{...}} blocks filled
   in: the repository's address, and tables printed from the stored results (GENERATED); MathJax and
   the widgets' JavaScript copied from node_modules into its _static (VENDOR), so pages render offline.
2. Run each notebooks/*.ipynb with papermill (parameters smoke, out and strict=True: a claim of
   the prose that the run does not bear out fails it, cag_lib.claims; an explicit execution
   timeout per cell) into _build/site/notebooks/. A notebook that writes to stderr fails the run:
   readers should not see warnings. A full run records each chapter's wall time and machine in
   notebooks/baselines/minutes.json, which the instructors page prints ({{chapter_minutes}}).
3. Compare each <out>/metrics.json with notebooks/baselines/<name>.<mode>.json: every stored
   metric must be within its stated absolute tolerance. A regression fails the run.
4. `jupyter-book build` the staged book with warnings as errors (the notebooks are not executed
   again: execute_notebooks is "off").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from answer_key import answer_key_markdown
from repository import NOTICE, configured_from, fill, is_placeholder, stage_config

from cag_lib import text_results, zoo
from cag_lib.bench import t4_estimate
from cag_lib.imagenet import PRESETS
from cag_lib.gap import gap_findings, gap_table, gap_verdict, levers_table, shapes_judge_card, shapes_table
from cag_lib.metrics import ablation_markdown
from cag_lib.panel import (ablation_table, judges_table, judges_verdict, minus_one_table, minus_one_verdict,
                           paper_table, paper_verdict, results_dir)

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_build" / "site"
BASELINES = ROOT / "notebooks" / "baselines"
MINUTES = BASELINES / "minutes.json"   # each chapter's full run, as the instructors page states it


def default_tolerance(name: str, value: float) -> float:
    """The tolerance --update-baselines writes (edit the file to state another): accuracies and
    confidences 0.15 absolute (a smoke run judges few images); anything else 25 % of its value."""
    if name.endswith(("_acc", "_conf")) or "acc_" in name:
        return 0.15
    return round(max(0.25 * abs(value), 1e-3), 4)


def compare(measured: dict, baseline: dict) -> list[str]:
    """Problems of measured {name: value} against baseline {name: {"value": v, "tol": t}}."""
    problems = []
    for name, ref in baseline.items():
        if name not in measured:
            problems.append(f"{name}: missing from metrics.json")
        elif abs(measured[name] - ref["value"]) > ref["tol"]:
            problems.append(f"{name}: {measured[name]:.4f}, baseline {ref['value']:.4f} ± {ref['tol']}")
    return problems


def stderr_outputs(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return [o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
            for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]


# What the built book serves itself instead of loading it from CDNs (so a page renders offline):
# npm package folder in node_modules -> _static/vendor/<name> of the built book, staged in _vendor (a
# folder named _static would make jupyter-book load every .js in it on every page); `npm ci` installs them
VENDOR = {"mathjax": "mathjax/es5", "@jupyter-widgets/html-manager/dist": "@jupyter-widgets/html-manager/dist",
          "requirejs": "requirejs"}
ASSETS = ROOT / "scripts" / "book_assets"
OFFLINE = {"html_static_path": ["_vendor"],
           "html_css_files": ["book.css"],                                 # scripts/book_assets/book.css
           "mathjax_path": "vendor/mathjax/tex-mml-chtml.js",
           "nb_ipywidgets_js": {"vendor/requirejs/require.js": {},
                                "vendor/widgets-config.js": {},          # RequireJS's base; MathJax 3
                                "vendor/@jupyter-widgets/html-manager/dist/embed-amd.js": {}}}


def vendor() -> None:
    """Copy MathJax, the widgets' HTML manager and RequireJS into the staged book's _static."""
    for name, folder in VENDOR.items():
        src = ROOT / "node_modules" / folder
        if not src.is_dir():
            raise SystemExit(f"{src} is missing: the book serves MathJax and the widgets' JavaScript itself; "
                             "install them with `npm ci` (scripts/setup.sh does it)")
        shutil.copytree(src, STAGE / "_vendor" / "vendor" / name,
                        ignore=shutil.ignore_patterns("*.map", "*.md", "bin", "package.json"))
    # the widgets' CSS asks for its icon fonts one folder up, at vendor/@jupyter-widgets/<hash>.woff
    for font in (ROOT / "node_modules" / "@jupyter-widgets/html-manager/dist").iterdir():
        if font.suffix in (".woff", ".woff2", ".ttf", ".eot", ".svg"):
            shutil.copy(font, STAGE / "_vendor" / "vendor" / "@jupyter-widgets")
    shutil.copy(ASSETS / "widgets-config.js", STAGE / "_vendor" / "vendor")
    shutil.copy(ASSETS / "book.css", STAGE / "_vendor")
    (STAGE / "_ext").mkdir(exist_ok=True)
    shutil.copy(ASSETS / "unique_scripts.py", STAGE / "_ext")


def offline_config(config: dict) -> dict:
    """The staged configuration with MathJax and the widgets' scripts served from _static/vendor."""
    sphinx = dict(config.get("sphinx", {}))
    sphinx["config"] = {**sphinx.get("config", {}), **OFFLINE}
    sphinx["local_extensions"] = {**sphinx.get("local_extensions", {}), "unique_scripts": "_ext"}
    return {**config, "sphinx": sphinx}


def printed(*cmd: str):
    """A GENERATED block that is what a script prints (run from the repository's root)."""
    return lambda: subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout.strip()


def stored_panel() -> dict:
    return json.loads((results_dir() / "panel_fmnist.json").read_text())


def chapter_notebooks() -> list[Path]:
    """notebooks/ch*.ipynb in chapter order."""
    return sorted((ROOT / "notebooks").glob("ch*.ipynb"), key=lambda p: int(p.stem[2:].split("_")[0]))


def t4_estimate_text() -> str:
    """The free-Colab-T4 estimate of each ImageNet preset, from the H100 step of speed_imagenet."""
    measured = json.loads((results_dir() / "speed_imagenet_h100_bf16.json").read_text())
    said = []
    for name, preset in PRESETS.items():
        low, high = t4_estimate(measured, preset["steps"])
        said.append(f'{low / 60:.1f} to {high / 60:.1f} minutes per picture for `"{name}"` ({preset["steps"]} steps)')
    return "; ".join(said)


# {{name}} in a book page -> what this makes: tables made from the stored results, not typed
GENERATED = {
    "speed_cpu_tables": printed("benchmarks/speed_cpu.py", "--table", "--json",
                                "benchmarks/results/speed_cpu_fmnist.json"),
    "zoo_table": zoo.markdown_table,
    "panel_ablation": lambda: ablation_table(stored_panel()),
    "panel_minus_one": lambda: minus_one_table(stored_panel()),
    "panel_paper": lambda: paper_table(stored_panel()),
    "panel_judges": lambda: judges_table(stored_panel()),
    "paper_verdict": lambda: paper_verdict(stored_panel()),
    "judges_verdict": lambda: judges_verdict(stored_panel()),
    "minus_one_verdict": lambda: minus_one_verdict(stored_panel()),
    "gap_table": lambda: gap_table(stored_panel()),
    "gap_verdict": lambda: gap_verdict(stored_panel()),
    "gap_findings": lambda: gap_findings(stored_panel()),
    "gap_levers": lambda: levers_table(json.loads((results_dir() / "levers_fmnist.json").read_text())),
    "shapes_table": lambda: shapes_table(json.loads((results_dir() / "shapes_conditional.json").read_text()),
                                         zoo.read_manifest()["shapes"]),
    "shapes_judges": lambda: shapes_judge_card(json.loads((results_dir() / "shapes_conditional.json").read_text())),
    "ablation_80": lambda: ablation_markdown(results_dir() / "ablation_fmnist.json"),
    "chapter_minutes": lambda: minutes_table(),
    "t4_estimate": t4_estimate_text,
    "answer_key": lambda: answer_key_markdown(chapter_notebooks(), STAGE / "outputs", STAGE / "notebooks"),
    **{f"clip_lab_{name}": (lambda name=name: text_results.lab_tables()[name])
       for name in text_results.LAB_TABLES},
}


QUOTE = re.compile(r"\{\{json:([\w./-]+)\|([^|}]+)\|([^}]*)\}\}")


def quote(match: re.Match) -> str:
    """{{json:FILE|key/key/...|FORMAT}} -> that value of benchmarks/results/FILE (or of the zoo's
    manifest, FILE = cag_lib/weights/manifest.json), formatted
    ("{{json:ablation_fmnist.json|rows/CaG full/fd|.1f}}" -> "11.0"); a missing key is named."""
    path = ROOT / match[1] if match[1].startswith("cag_lib/") else ROOT / "benchmarks" / "results" / match[1]
    value = json.loads(path.read_text())
    for key in match[2].split("/"):
        try:
            value = value[key]
        except (KeyError, TypeError):
            raise KeyError(f"{match[0]}: {path.name} has no {key!r} there") from None
    return format(value, match[3])


def generated(page: str) -> str:
    """A book page with its {{name}} blocks of GENERATED and its {{json:...}} quotes filled in."""
    page = QUOTE.sub(quote, page)
    for name, make in GENERATED.items():
        if "{{" + name + "}}" in page:
            page = page.replace("{{" + name + "}}", make())
    return page


def repository_url() -> str:
    return configured_from(yaml.safe_load((ROOT / "_config.yml").read_text()))


def stage_page(name: str, url: str) -> None:
    """book/NAME into the staged book, its {{...}} filled: the address, GENERATED tables, quotes."""
    (STAGE / "book" / name).write_text(generated(fill((ROOT / "book" / name).read_text(), url)))


def stage() -> None:
    """The book's files in _build/site; its configuration from the repository setting
    (scripts/repository.py); without a public home, no launch links and a note that says so."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    (STAGE / "notebooks").mkdir(parents=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = repository_url()
    staged = offline_config(stage_config(config))
    (STAGE / "_config.yml").write_text(yaml.safe_dump(staged, sort_keys=False, allow_unicode=True))
    vendor()
    shutil.copy(ROOT / "_toc.yml", STAGE / "_toc.yml")
    shutil.copytree(ROOT / "book", STAGE / "book")
    for page in (STAGE / "book").glob("*.md"):
        stage_page(page.name, url)
    if is_placeholder(url):
        intro = STAGE / "book" / "intro.md"
        title, rest = intro.read_text().split("\n", 1)
        intro.write_text(f"{title}\n\n{NOTICE}{rest}")


def run_notebook(src: Path, smoke: bool, timeout: int) -> tuple[Path, float]:
    import papermill as pm
    os.environ["TQDM_DISABLE"] = "1"  # the kernels inherit it: a progress widget is noise in a static page
    out = STAGE / "outputs" / src.stem
    dst = STAGE / "notebooks" / src.name
    t0 = time.time()
    pm.execute_notebook(str(src), str(dst), parameters={"smoke": smoke, "strict": True, "out": f"outputs/{src.stem}"},
                        cwd=str(STAGE), kernel_name="python3", execution_timeout=timeout, progress_bar=False)
    hide_injected_parameters(dst)
    return out, time.time() - t0


def hide_injected_parameters(path: Path) -> None:
    """The book's reader sees the notebook's own parameters cell, not the one papermill injected."""
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        tags = c.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    path.write_text(json.dumps(nb, indent=1) + "\n")


def give_the_redirect_a_favicon(html: Path) -> None:
    """jupyter-book's root index.html only redirects to the first page; without an icon link of its
    own a browser asks the server for /favicon.ico, a 404 in the console of the book's front door."""
    index = html / "index.html"
    text = index.read_text() if index.exists() else ""
    if 'http-equiv="Refresh"' in text and 'rel="icon"' not in text:
        index.write_text('<link rel="icon" href="_static/favicon.png" />\n' + text)


def record_minutes(name: str, seconds: float, path: Path = MINUTES) -> None:
    """Keep one full run's wall time per chapter (other chapters' entries stay), with the machine."""
    record = json.loads(path.read_text()) if path.exists() else {}
    record[name] = {"seconds": round(seconds, 1), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.is_available(), "machine": platform.machine(),
                    "date": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")


def minutes_table(path: Path = MINUTES) -> str:
    """The instructors page's table: each chapter's measured full run (one column per chapter), and
    the machines it was measured on, from the record."""
    if not path.exists():
        return f"(not measured yet: `make book` writes {path.relative_to(ROOT)})"
    record = json.loads(path.read_text())
    names = sorted(record, key=lambda n: int(n[2:].split("_")[0]))
    machines = sorted({("a GPU" if r["gpu"] else f"{r['cpus']} CPU cores") + f", {r['date']}"
                       for r in record.values()})
    return "\n".join([
        "| chapter | " + " | ".join(f"{{doc}}`{n[2:].split('_')[0]} <../notebooks/{n}>`" for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
        "| minutes | " + " | ".join(f"{record[n]['seconds'] / 60:.1f}" for n in names) + " |",
        "", f"Measured on {'; '.join(machines)}."])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="small parameters (CI)")
    p.add_argument("--only", nargs="+", default=None, help="notebook names to run (default: all)")
    p.add_argument("--timeout", type=int, default=900, help="papermill's execution timeout per cell, s")
    p.add_argument("--update-baselines", action="store_true")
    p.add_argument("--no-build", action="store_true", help="run and compare only")
    a = p.parse_args(argv)
    mode = "smoke" if a.smoke else "full"
    notebooks = sorted((ROOT / "notebooks").glob("ch*.ipynb"))
    if a.only:
        notebooks = [n for n in notebooks if n.stem in a.only]
    stage()
    failures = []
    for nb in notebooks:
        out, secs = run_notebook(nb, a.smoke, a.timeout)
        if not a.smoke:
            record_minutes(nb.stem, secs)
        measured = json.loads((out / "metrics.json").read_text())
        base_path = BASELINES / f"{nb.stem}.{mode}.json"
        if a.update_baselines:
            base_path.parent.mkdir(parents=True, exist_ok=True)
            base = {k: {"value": v, "tol": default_tolerance(k, v)} for k, v in measured.items()
                    if not k.endswith("seconds")}
            base_path.write_text(json.dumps(base, indent=2) + "\n")
        problems = [f"writes to stderr: {t.strip()[:300]}" for t in stderr_outputs(STAGE / "notebooks" / nb.name)]
        if base_path.exists():
            problems += compare(measured, json.loads(base_path.read_text()))
        else:
            problems.append(f"no baseline {base_path.relative_to(ROOT)}: run with --update-baselines")
        print(f"{nb.stem:<28} {secs:6.1f} s  " + ("ok" if not problems else "FAILED"), flush=True)
        failures += [f"{nb.stem}: {m}" for m in problems]
    if failures:
        print("\n".join(["", "regressions / problems:"] + failures), file=sys.stderr)
        return 1
    if not a.smoke:   # the minutes and the answers this run just measured
        stage_page("instructors.md", repository_url())
        stage_page("answers.md", repository_url())
    if not a.no_build:
        t0 = time.time()
        r = subprocess.run(["jupyter-book", "build", str(STAGE), "-W", "-n", "--keep-going", "-q"])
        if r.returncode:
            return r.returncode
        give_the_redirect_a_favicon(STAGE / "_build" / "html")
        print(f"book built in {time.time() - t0:.0f} s: {STAGE / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
