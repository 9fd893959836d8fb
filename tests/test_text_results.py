"""Chapter 8's table and the lab notes come from the stored text-to-image runs, and what their prose
says of those runs holds."""
import re
from pathlib import Path

import pytest

from cag_lib import text_results as tr

ROOT = Path(__file__).resolve().parents[1]


def sc(name, key=tr.SAMPLER_ROW):
    return tr.report(name)[key]["shape+colour_acc"]


def test_story_rows_are_the_files_rows():
    story = tr.story_rows()
    assert list(story) == list(tr.STORY)
    for label, (name, key) in tr.STORY.items():
        stored = tr.report(name)[key]
        assert story[label]["shape+colour"] == stored["shape+colour_acc"]
        assert story[label]["background"] == stored["background_acc"]
        assert story[label]["white circle on red"] == stored["per_prompt_shape+colour"][tr.HARD_PROMPT]


def test_chapter_8s_story_holds_in_the_stored_runs():
    """What chapter 8's prose says of its table (its numbers are glued from the same rows)."""
    s = {k: v["shape+colour"] for k, v in tr.story_rows().items()}
    circle = {k: v["white circle on red"] for k, v in tr.story_rows().items()}
    assert s["1 CLIP"] < 0.35 < s["8 CLIPs"]                                   # reads well, guides badly
    assert abs(s["16 CLIPs"] - s["8 CLIPs"]) < 0.05 and abs(s["16 CLIPs, seed 1"] - s["8 CLIPs"]) < 0.05
    assert circle["16 CLIPs"] < circle["8 CLIPs"] and circle["16 CLIPs, seed 1"] < circle["8 CLIPs"]
    for seed in ("8 robust CLIPs", "8 robust CLIPs, seed 1"):                # above g(real), and the circle
        assert s[seed] > s["MAE g(real scenes)"] and s[seed] > s["16 CLIPs"] + 0.1
        assert circle[seed] == 1.0
    assert s["8 robust CLIPs - MAE"] < s["8 CLIPs"] - 0.3                      # the MAE matters more
    assert s["8 robust CLIPs"] > s["8 robust CLIPs + diversity"] > s["MAE g(real scenes)"]


def test_lab_notes_claims_hold():
    """What book/clip_lab.md's prose says of its tables."""
    # the GPU and the CPU "1 CLIP" rows differ by about two standard errors of 80 pictures
    se = (0.25 * 0.75 / 80) ** 0.5
    gap = abs(sc("text_to_image_shapes.json", "1 CLIP") - sc("text_to_image_shapes_cpu_1clip.json", "1 CLIP"))
    assert 1.5 * se < gap < 3 * se
    # no knob left the range of the recipe's two seeds by more than a standard error of 32 pictures
    recipe = [sc(tr.SEEN + f) for f in ("recipe", "recipe_seed1")]
    for f in tr.KNOBS.values():
        assert min(recipe) - 0.08 <= sc(tr.SEEN + f) <= max(recipe) + 0.08, f
    means = list(tr.ensemble_means().values())
    assert means == sorted(means)                                              # keeps rising on seen
    held = {k: sc(f) for k, f in tr.HELD_OUT_SIZES.items()}
    assert all(abs(v - held["8 CLIPs"]) < 0.05 for v in held.values())         # stopped paying after 8
    circle = tr.per_prompt(tr.HELD_OUT_SIZES)[tr.HARD_PROMPT]
    assert circle["8 CLIPs"] > circle["12 CLIPs"] > circle["16 CLIPs"]        # got worse as it grew
    ablation = "text_to_image_shapes_cpu_8robustclips_ablation.json"           # repeats the run exactly
    first, again = (tr.report(f)[tr.SAMPLER_ROW] for f in ("text_to_image_shapes_cpu_8robustclips.json", ablation))
    assert {k: again[k] for k in first if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}
    div = {k: tr.report(ablation)[k]["diversity"] for k in ("real images", "8 CLIPs + diversity", tr.SAMPLER_ROW)}
    assert abs(div["8 CLIPs + diversity"] - div["real images"]) < 0.1 * div["real images"]
    assert div[tr.SAMPLER_ROW] < div["real images"]


def test_the_lab_page_prints_every_table_and_types_no_number(book_page):
    import build_book
    page, filled = book_page("clip_lab.md")
    names = set(re.findall(r"\{\{(clip_lab_\w+)\}\}", page))
    assert names == {k for k in build_book.GENERATED if k.startswith("clip_lab_")}
    assert tuple(tr.lab_tables()) == tr.LAB_TABLES
    prose = re.sub(r"`[^`]*`", "", page)                 # commands may carry numbers (--adv-eps 0.5)
    typed = [n for n in re.findall(r"\b0\.\d{2,}\b", prose) if n not in ("0.75", "0.08", "0.05")]  # error bars
    assert not typed, f"typed results on the lab page: {typed}"
    assert "{{" not in filled and f"| {sc(tr.SEEN + 'robust8'):.3f} |" in filled


def test_a_missing_run_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_run.json"):
        tr.report("no_such_run")
