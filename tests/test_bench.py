"""The benchmarks' harness: a report records where and how it was made, atomically; a report that
adds rows to a stored one keeps the others and lists every command that wrote it."""
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
