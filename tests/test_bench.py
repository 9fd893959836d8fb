"""The benchmarks' harness: a report records where and how it was made, atomically; a report that
adds rows to a stored one keeps the others and lists every command that wrote it."""
import pytest
import json
import sys

from cag_lib import bench


def test_a_report_records_machine_and_command_and_merged_rows_keep_their_history(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["bench.py", "score"])
    bench.write_report(path, {"rows": {"a": 1, "b": 2}})
    first = json.loads(path.read_text())
    assert first["command"] == "python bench.py score" and first["machine"]["threads"] >= 1
    assert not (tmp_path / "r.json.tmp").exists()
    monkeypatch.setattr(sys, "argv", ["bench.py", "score", "b"])
    bench.write_report(path, bench.merged_rows(path, {"rows": {"b": 3}}))
    monkeypatch.setattr(sys, "argv", ["bench.py", "score", "c"])
    bench.write_report(path, bench.merged_rows(path, {"rows": {"c": 4}}))
    last = json.loads(path.read_text())
    assert last["rows"] == {"a": 1, "b": 3, "c": 4}
    assert last["earlier_commands"] == ["python bench.py score", "python bench.py score b"]
    assert last["command"] == "python bench.py score c"
    assert bench.merged_rows(tmp_path / "none.json", {"rows": {}}) == {"rows": {}}


def test_the_t4_estimate_brackets_by_hand():
    """A measured run of 100 GFLOP per image-step at 10% of its GPU's peak, 8 ms per image-step:
    the T4 (65 TFLOP/s fp16) at the same fraction takes 100 / 6500 s per step; at least as long as
    the measured GPU, and at least its own peak's 100 / 65000 s."""
    from cag_lib.bench import t4_estimate
    run = {"batch": 4, "gflop_per_step": 400.0, "ms_per_step": 32.0, "fraction_of_peak": 0.1}
    low, high = t4_estimate(run, 1000)
    assert low == pytest.approx(1000 * 0.008) and high == pytest.approx(1000 * 100 / 6500)
    fast = {**run, "ms_per_step": 1.0}                          # faster than the T4's own peak allows
    assert t4_estimate(fast, 1000)[0] == pytest.approx(1000 * 100 / 65000)
