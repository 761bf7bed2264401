"""`superres demo` end to end with the real SPAN model, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_demo_command_prints_process_results_and_writes_before_after(tmp_path: Path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "superres", "demo", "--out", str(out), "--magnify", "4"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "ProcessResults" in proc.stdout
    assert '"key": "superres/uploads/astronaut.jpg"' in proc.stdout
    assert "input 512x512 -> output 2048x2048" in proc.stdout
    with Image.open(out / "ai-astronaut.jpg") as result:
        assert result.size == (2048, 2048)
    with Image.open(out / "before-after.png") as comparison:
        assert comparison.width == 2 * 2048 + 8
