"""cag_lib.claims: a failed claim stops the book's build and only notes itself in a reader's run."""
import pytest

from cag_lib.claims import ClaimError, claim


def test_a_claim_that_holds_says_nothing(capsys):
    assert claim(True, "x", strict=True) is True and claim(True, "x") is True
    assert capsys.readouterr().out == ""


def test_a_failed_claim_stops_a_strict_run_with_the_claim_and_the_numbers():
    with pytest.raises(ClaimError, match=r"the book says the MAE's step is the largest.*0\.62"):
        claim(False, "the MAE's step is the largest", strict=True, measured="steps 0.62, 0.15")


def test_a_failed_claim_in_a_readers_run_prints_one_line_and_goes_on(capsys):
    assert claim(False, "the MAE's step is the largest", measured="steps 0.62, 0.15") is False
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1
    assert "differs from the book's" in out.out and "the MAE's step is the largest" in out.out


def test_every_chapter_takes_strict_and_the_build_passes_it():
    """Every chapter's parameters cell has strict (default False: a reader's run), and the book's
    build runs the chapters with strict=True."""
    import inspect
    import json
    from pathlib import Path

    import build_book
    root = Path(__file__).parents[1]
    for nb in sorted((root / "notebooks").glob("ch*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        params = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert "\nstrict = False" in "\n" + params, nb.name
    assert '"strict": True' in inspect.getsource(build_book.run_notebook)
