"""The book's tooling: the regression comparison, and (after scripts/build_book.py) the built pages."""
import importlib.util
import os
import re
from pathlib import Path

import pytest
from repository import configured, is_placeholder

ROOT = Path(__file__).parents[1]
HTML = ROOT / "_build" / "site" / "_build" / "html"
spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
build_book = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_book)


def test_compare_flags_a_regression_and_a_missing_metric():
    base = {"judge_acc": {"value": 0.9, "tol": 0.05}, "fd": {"value": 10.0, "tol": 2.5}}
    assert build_book.compare({"judge_acc": 0.87, "fd": 12.0}, base) == []
    problems = build_book.compare({"judge_acc": 0.80}, base)
    assert len(problems) == 2 and "judge_acc: 0.8000, baseline 0.9000" in problems[0] and "fd: missing" in problems[1]


def test_every_notebook_is_in_the_toc_and_has_a_smoke_baseline():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in sorted((ROOT / "notebooks").glob("ch*.ipynb")):
        assert f"notebooks/{nb.stem}" in toc, nb.name
        assert (ROOT / "notebooks" / "baselines" / f"{nb.stem}.smoke.json").exists(), nb.name


def test_every_smoke_tolerance_covers_the_measured_spread_across_kernel_paths():
    """Each smoke baseline's tolerance is at least the stated margin times the key's range across
    the CPU kernel paths measured (notebooks/baselines/kernel_spread.json, the baseline's own
    value included), so another CPU's rounding cannot fail the book; and every key was measured on
    at least three paths."""
    import json
    record = json.loads((ROOT / "notebooks" / "baselines" / "kernel_spread.json").read_text())
    for path in sorted((ROOT / "notebooks" / "baselines").glob("*.smoke.json")):
        nb = path.name.split(".")[0]
        for key, ref in json.loads(path.read_text()).items():
            by_path = record["values"][nb][key]
            assert {"native", "avx2", "default"} <= set(by_path), (nb, key)
            seen = [*by_path.values(), ref["value"]]
            assert ref["tol"] >= record["margin"] * (max(seen) - min(seen)) - 1e-4, (nb, key, ref, by_path)


def test_notebook_code_lines_fit_88_columns():
    """The book shows 88 columns of code without scrolling (book.css); the browser check finds a
    longer line only after a full build, this finds it at once."""
    import json
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            if c["cell_type"] == "code":
                long = [line for line in "".join(c["source"]).splitlines() if len(line) > 88]
                assert not long, (nb.name, long)


def test_notebooks_are_committed_without_outputs_and_with_parameters():
    import json
    for nb in sorted((ROOT / "notebooks").glob("ch*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name}: strip outputs"
        # the Colab badge first once the book has a public home (tests/test_repository.py: from the setting)
        badge = "colab.research.google.com" in "".join(cells[0]["source"])
        assert badge != is_placeholder(configured()), f"{nb.name}: Colab badge first, if the book has a home"
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, f"{nb.name}: one cell tagged parameters"
        for name in ("bundle", "steps", "per_class", "seed", "device", "out", "smoke"):
            assert re.search(rf"^{name} = ", "".join(params[0]["source"]), re.M), f"{nb.name}: parameter {name}"
        assert re.search(r'^device = "auto"', "".join(params[0]["source"]), re.M), f"{nb.name}: device 'auto'"
        resolved = "".join(cells[cells.index(params[0]) + 1]["source"])
        assert "resolve_device(device)" in resolved, f"{nb.name}: resolve the device right after the parameters"


def built_chapter_pages() -> list[tuple[str, str]]:
    """(chapter, HTML) of every chapter page of the built book. CI builds the book before the tests,
    so there a missing book fails; elsewhere the test is skipped."""
    if not HTML.exists():
        if os.environ.get("CI"):
            pytest.fail("no built book: run `python scripts/build_book.py --smoke` first")
        pytest.skip("the book is not built (python scripts/build_book.py --smoke)")
    return [(nb.stem, (HTML / "notebooks" / f"{nb.stem}.html").read_text())
            for nb in sorted((ROOT / "notebooks").glob("ch*.ipynb"))]


def test_every_chapter_page_shows_a_picture():
    """After scripts/build_book.py: each chapter's page embeds at least one image of its own (the
    Colab badge, an external image, does not count)."""
    for stem, page in built_chapter_pages():
        own = [src for src in re.findall(r'<img[^>]*src="([^"]+)"', page) if not src.startswith("http")]
        assert own, f"{stem}.html shows no image"


def test_chapter_pages_show_no_bare_python_reprs():
    """After scripts/build_book.py: a cell's last expression should not leak a repr such as
    PosixPath('...') or <Figure size ...> into the page a reader sees."""
    for stem, page in built_chapter_pages():
        leaks = re.findall(r"PosixPath\(|&lt;Figure size", page)
        assert not leaks, f"{stem}.html shows {leaks[0]}"


def test_pages_quote_results_from_the_files_and_type_none(book_page):
    """Result numbers on the pages come from benchmarks/results through {{json:FILE|key/...|FORMAT}}
    quotes or {{name}} tables, filled when the book is built; a wrong key is an error that names it."""
    for name in ("ablation.md", "where.md", "clip_lab.md", "instructors.md", "zoo.md", "speed.md"):
        assert "{{" not in book_page(name)[1], name
    for name in ("ablation.md", "where.md", "clip_lab.md", "instructors.md", "imagenet.md"):  # zoo.md: history
        page = book_page(name)[0]
        prose = re.sub(r"`[^`]*`|\{\{[^}]*\}\}|\$[^$]*\$", "", page)      # code, quotes, maths
        typed = [n for n in re.findall(r"(?<![\w.])0\.\d{3}(?![\w.])", prose)]
        assert not typed, f"{name}: typed results {typed}"
    page = "{{json:mala_fmnist.json|rows/CaG full/judge_acc|.3f}}"
    import json
    stored = json.loads((ROOT / "benchmarks" / "results" / "mala_fmnist.json").read_text())
    assert build_book.generated(page) == f'{stored["rows"]["CaG full"]["judge_acc"]:.3f}'
    with pytest.raises(KeyError, match="no 'CaG ful'"):
        build_book.generated("{{json:mala_fmnist.json|rows/CaG ful/judge_acc|.3f}}")


def test_imagenet_page_quotes_the_stored_speed_runs():
    """book/imagenet.md's speed table quotes benchmarks/results/speed_imagenet_*.json (filled at build)."""
    import json
    raw = (ROOT / "book" / "imagenet.md").read_text()
    page = build_book.generated(raw)
    assert "{{json:speed_imagenet_h100_fp32.json|ms_per_step|.1f}}" in raw
    runs = sorted((ROOT / "benchmarks" / "results").glob("speed_imagenet_h100_*.json"))
    assert len(runs) == 3
    for f in runs:
        r = json.loads(f.read_text())
        assert r["device"].startswith("NVIDIA H100")
        quoted = [f"| {r['ms_per_step']:.1f} | {r['gflop_per_step']:.1f} |", f"{r['achieved_tflops']:.1f} TFLOP/s"]
        assert all(q in page for q in quoted), f"book/imagenet.md does not quote {f.name}"


@pytest.mark.parametrize("chapter", ["ch2_eq1", "ch3_regularisers", "ch4_mae", "ch5_progressive", "ch6_diversity",
                                     "ch7_ensembles_evaluation"])
def test_chapters_2_to_7_show_the_loop_and_check_it_against_the_library(chapter):
    """The chapter's own optimisation step in a code cell the reader sees, and a cell that asserts
    cag_lib.generate gives the same images on the same seed."""
    import json
    cells = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"
            and not {"hide-input", "hide-cell"} & set(c.get("metadata", {}).get("tags", []))]
    assert any("loss.backward()" in s and "opt.step()" in s for s in code), f"{chapter}: no visible step"
    assert any("assert diff <= 1e-5, f\"the chapter's loop and cag_lib.generate" in s for s in code), f"{chapter}: no check"
    md = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "**You will learn**" in md and "## Summary" in md, f"{chapter}: objectives and a summary"


def test_every_page_placeholder_is_filled_and_the_speed_tables_come_from_the_json():
    """A page's {{name}} is the repository's address or a GENERATED table; the speed page's tables are
    what benchmarks/speed_cpu.py prints from the stored JSON (nothing typed)."""
    known = {"repository_url", "colab_url", *build_book.GENERATED}
    for page in (ROOT / "book").glob("*.md"):
        names = set(re.findall(r"\{\{(\w+)\}\}", page.read_text()))
        assert names <= known, f"{page.name}: unknown {names - known}"
    speed = build_book.generated((ROOT / "book" / "speed.md").read_text())
    assert "{{" not in speed
    import json
    report = json.loads((ROOT / "benchmarks" / "results" / "speed_cpu_fmnist.json").read_text())
    for row in report["variants"]:
        assert f"| {row['ms_per_step']} |" in speed, row["variant"]
    assert f"| before | {report['full_run']['before']['seconds']} |" in speed
    assert f"| after | {report['full_run']['after']['seconds']} |" in speed


def test_the_pipeline_figure_is_drawn_from_one_real_step(tmp_path):
    """scripts/pipeline_figure.py draws the intro's and chapter 4's figure from the bundle's models."""
    import pipeline_figure
    import torch

    from cag_lib.zoo import load_bundle
    masked, g, probs, loss, grad = pipeline_figure.one_step(load_bundle("fmnist"), torch.rand(1, 1, 32, 32))
    assert abs(probs.sum().item() - 1) < 1e-5 and loss > 0
    hidden = (masked == 0.5).float().mean().item()
    assert 0.7 < hidden < 0.8 and (grad != 0).float().mean() <= 0.25 + 1e-6   # gradient only where visible
    pipeline_figure.main(["--out", str(tmp_path / "p.png")])
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_worked_solutions_are_hidden_until_opened_and_executed():
    """Every worked solution: its code in a cell hidden with its output (tag hide-cell, executed in CI),
    its explanation in a dropdown; never a solution the reader cannot help seeing."""
    import json
    solved = 0
    for nb in sorted((ROOT / "notebooks").glob("ch*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            src, tags = "".join(c["source"]), c.get("metadata", {}).get("tags", [])
            if c["cell_type"] == "code" and src.startswith("# Solution to exercise"):
                assert "hide-cell" in tags, f"{nb.name}: a solution's code must be hidden with its output"
                solved += 1
            if c["cell_type"] == "markdown" and "olution to exercise" in src:
                assert src.startswith("```{admonition} Solution to exercise") and ":class: dropdown" in src, \
                    f"{nb.name}: a solution's explanation belongs in a dropdown"
    assert solved >= 7


def test_the_instructors_page_states_each_chapters_measured_minutes(tmp_path):
    """make book records each chapter's full run (notebooks/baselines/minutes.json, other chapters'
    entries kept); the instructors page prints that record, one row per chapter."""
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("ch*.ipynb"))
    table = build_book.minutes_table()
    for name in chapters:
        assert f"<../notebooks/{name}>`" in table, name
    record = tmp_path / "minutes.json"
    build_book.record_minutes("ch2_eq1", 30.0, record)
    build_book.record_minutes("ch10_competitive", 90.0, record)
    build_book.record_minutes("ch2_eq1", 42.0, record)
    minutes = build_book.minutes_table(record).splitlines()[2]
    assert minutes.split("|")[2:4] == [" 0.7 ", " 1.5 "]                   # ch2 before ch10, replaced
    assert "{{chapter_minutes}}" in (ROOT / "book" / "instructors.md").read_text()


def test_the_front_door_redirect_names_the_favicon(tmp_path):
    """The built root index.html (a bare redirect) links the favicon, so loading it logs no 404."""
    (tmp_path / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n')
    build_book.give_the_redirect_a_favicon(tmp_path)
    build_book.give_the_redirect_a_favicon(tmp_path)                       # once only
    text = (tmp_path / "index.html").read_text()
    assert text.count('rel="icon" href="_static/favicon.png"') == 1 and "url=book/intro.html" in text


def test_every_exercise_has_a_hidden_worked_solution():
    """Each chapter's exercises each have a worked solution: a hidden code cell (a measurement)
    and/or a dropdown of prose (the reasoning), which the build runs; a solution with code keeps
    its answer (save_answer), which the answer key prints."""
    from answer_key import exercises
    notebooks = sorted((ROOT / "notebooks").glob("ch*.ipynb"))
    total = 0
    for nb in notebooks:
        found = exercises(nb)
        assert found, f"{nb.name}: no exercises"
        for n, e in found.items():
            assert e["prose"], f"{nb.name}: exercise {n} has no worked solution in prose"
            assert e["hidden"], f"{nb.name}: the solution to exercise {n} is not hidden"
        import json
        code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                         if c["cell_type"] == "code")
        for n in (n for n, e in found.items() if e["code"]):
            assert re.search(rf"save_answer\(\s*out,\s*{n}\b", code), f"{nb.name}: solution {n} keeps no answer"
        total += len(found)
    assert total >= 32


def test_the_answer_key_lists_every_exercise_and_the_answers_a_run_kept(tmp_path):
    import json

    from answer_key import answer_key_markdown, student_copy
    nb = ROOT / "notebooks" / "ch2_eq1.ipynb"
    (tmp_path / "ch2_eq1").mkdir()
    (tmp_path / "ch2_eq1" / "answers.json").write_text('{"1": {"vit_acc": 0.91234}}')
    executed = tmp_path / "executed"
    executed.mkdir()
    glue = {"cell_type": "code", "source": [], "metadata": {}, "outputs": [{
        "output_type": "display_data", "metadata": {"scrapbook": {"name": "both_judge_acc",
                                                                   "mime_prefix": "x/"}},
        "data": {"x/text/plain": "0.1234"}}]}
    (executed / nb.name).write_text(json.dumps({"cells": [glue]}))
    page = answer_key_markdown([nb], tmp_path, executed)
    assert "**Exercise 1.** Attack the ViT instead" in page and "vit_acc: 0.912" in page
    assert page.count("Worked solution") == 3 and "key `1`" in page and "Kept answer: none." in page
    assert "and the judge reads 0.12, against" in page.replace("\n", " ")     # a glued number, formatted
    assert "{glue:" not in page and "[measured]" in page                 # not glued in this fake run
    unrun = answer_key_markdown([nb], None)
    assert "Kept answer" not in unrun and "[measured]" in unrun
    # the students' copy has the exercises and none of the solutions
    copy = json.loads(student_copy(nb, tmp_path / "students").read_text())
    text = "".join("".join(c["source"]) for c in copy["cells"])
    assert "## Exercises" in text and "Solution to exercise" not in text
    assert len(copy["cells"]) == len(json.loads(nb.read_text())["cells"]) - 6
