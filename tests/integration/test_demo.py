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
    assert '"key": "superres/uploads/astronaut.jpg.png"' in proc.stdout
    assert "input 512x512 -> output 2048x2048" in proc.stdout
    with Image.open(out / "ai-astronaut.png") as result:
        assert (result.format, result.size) == ("PNG", (2048, 2048))
    with Image.open(out / "before-after.png") as comparison:
        assert comparison.width > 2 * 2048
    assert (out / "index.html").is_file()


def test_demo_shows_several_outputs_x2_png_and_x4_webp(tmp_path: Path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "superres", "demo", "--out", str(out), "--engine", "bicubic",
                           "--outputs", "x2/:2,x4/:4:webp:80"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert '"key": "superres/x2/uploads/astronaut.jpg.png"' in proc.stdout
    assert "x4 processed: photos-1250000000/superres/x4/uploads/astronaut.jpg.webp" in proc.stdout
    assert "(WEBP 2048x2048)" in proc.stdout
    with Image.open(out / "ai-astronaut.png") as x2, Image.open(out / "ai-1-astronaut.webp") as x4:
        assert (x2.format, x2.size, x4.format, x4.size) == ("PNG", (1024, 1024), "WEBP", (2048, 2048))
