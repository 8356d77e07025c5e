"""``benchmarks/gpu_check.py --smoke``: every section of the GPU check runs on the tiny config on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_smoke_runs_every_section_and_writes_the_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| chunk resident |" in done.stdout
    report = json.loads(out.read_text())
    rows = {r["section"]: r for r in report["rows"]}
    assert [r["error"] for r in report["rows"]] == [None] * len(report["rows"])
    assert {"block", "chunk resident", "attention sdpa", "step cache 0.1", "compile", "block swap 2",
            "fp8 weights"} <= set(rows)
    assert rows["chunk resident"]["numbers"]["forwards"] == 4 and rows["chunk resident"]["seconds"] > 0
    assert 2 <= rows["step cache 0.1"]["numbers"]["forwards"] <= 4  # first and last step always computed
    assert rows["block swap 2"]["numbers"]["copies"] == 2 * 5 + 1  # warm-up + 4 steps, one prefetch ahead
    assert rows["fp8 weights"]["numbers"]["fp8_weights"] > 0
    assert rows["block"]["numbers"]["tflops"] > 0 and rows["compile"]["numbers"]["speedup"] > 0
