"""benchmarks/training_log_windows.py: the numbers docs/arc.md's balance tables rest on."""

import json
import math
import subprocess
import sys
from pathlib import Path

from conftest import load_script

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "training_log_windows.py"


def _module():
    return load_script("benchmarks/training_log_windows.py")


def test_each_line_weighs_the_steps_it_covers_and_a_relogged_step_keeps_its_later_value():
    lines = [{"step": 1, "a": 1.0}, {"step": 20, "a": 2.0, "b": 5.0}, {"step": 40, "a": 4.0},
             {"step": 20, "a": 3.0}]  # resumed from step 0's checkpoint: step 20 logged again
    means = _module().window_means(lines, 1, 20, ["a", "b"])
    assert means["a"] == (1.0 * 1 + 3.0 * 19) / 20
    assert means["b"] == 5.0
    assert math.isnan(_module().window_means(lines, 41, 60, ["a"])["a"])


def test_cli_prints_one_row_per_window_and_refuses_bad_windows(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": s / 10}) for s in (10, 20)))
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--windows", "1-10", "11-20"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "| run | steps | loss |"
    assert out[2:] == [f"| {tmp_path.name} | 1-10 | 1 |", f"| {tmp_path.name} | 11-20 | 2 |"]
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--windows", "20-1"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "ends before it starts" in bad.stderr
