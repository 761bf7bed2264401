"""The demo's HTML page as a reader sees it in a real browser: `superres demo` runs once (a subprocess, the real SPAN
model, two outputs, a photo named as people name them: spaces, `#`, `%`, non-ASCII, long), then Debian's headless
Chromium opens the index.html it wrote from its file:// URL (browser/check_page.js): every image loads, the
before/after slider follows the mouse, every output is shown with its size, the log line is there as JSON, nothing
overflows at laptop or phone width, and the browser reports no error. Assertions go by what the page shows (sizes,
pixels, the log line), not by result key names."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image, ImageChops, ImageStat

from superres.photos import photo_bytes

from .chromium import requires_chromium, run_script

pytestmark = requires_chromium
ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = "x2/:2,x4/:4:webp:80"
PHOTO = "Holiday photo #1 (100% crop) \u00fcber_IMG_20261206_0123456789012345678901234567890123456789.jpg"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder `superres demo --file PHOTO` wrote, run with no .env (its defaults) and no cloud keys."""
    tmp = tmp_path_factory.mktemp("demo-page")
    (tmp / PHOTO).write_bytes(photo_bytes(PHOTO)[0])
    (tmp / ".env").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    env["SUPERRES_ENV_FILE"] = str(tmp / ".env")
    out = tmp / "out"
    proc = subprocess.run([sys.executable, "-m", "superres", "demo", "--out", str(out), "--outputs", OUTPUTS,
                           "--file", str(tmp / PHOTO)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def check_page(page: Path, shots: Path) -> dict:
    shots.mkdir(parents=True, exist_ok=True)
    return run_script("check_page.js", str(page), str(shots))


@pytest.fixture(scope="module")
def report(demo_out: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return check_page(demo_out / "index.html", tmp_path_factory.mktemp("shots"))


def log_line(out: Path) -> dict:
    """The function's line for the upload in the demo's function-log.jsonl."""
    lines = [json.loads(raw) for raw in (out / "function-log.jsonl").read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if "outcome" in line][-1]


def test_every_image_loads_and_the_browser_reports_no_error(report: dict, demo_out: Path):
    assert report["problems"] == [], report["problems"]
    assert len(report["images"]) >= 4, report["images"]  # the slider's two, one per output, the picture
    for image in report["images"]:
        assert image["loaded"], image
        with Image.open(demo_out / unquote(image["src"])) as file:  # the file next to the page, at its own size
            assert tuple(image["natural"]) == file.size, image


def test_dragging_the_slider_or_pressing_arrow_keys_moves_the_cut_and_what_shows_of_the_after_image(report: dict):
    slider = report["slider"]
    assert slider["found"] and slider["fits_window"], slider  # the whole comparison on a 1280x800 screen
    assert min(slider["shown"]) >= 500, slider
    assert slider["start"]["value"] == 50 and slider["start"]["after_share"] == pytest.approx(0.5, abs=0.03)
    for stop in slider["stops"]:
        assert stop["value"] == pytest.approx(stop["target"], abs=3), stop
        assert stop["after_share"] == pytest.approx(1 - stop["value"] / 100, abs=0.03), stop
    keys = slider["keyboard"]
    assert keys["value"] == pytest.approx(keys["from"] - keys["presses"]), keys
    assert keys["after_share"] == pytest.approx(1 - keys["value"] / 100, abs=0.03), keys


def _columns(image: Image.Image, start: float, end: float) -> Image.Image:
    return image.crop((round(image.width * start), 0, round(image.width * end), image.height))


def test_the_slider_screenshots_change_only_between_the_two_cuts(report: dict):
    """Dragged to 20% then 80%: left of both cuts the upload both times, right of both the result both times, and
    in between the result first and then the upload, which differ."""
    first, second = (Image.open(stop["screenshot"]).convert("RGB") for stop in report["slider"]["stops"])
    assert first.size == second.size
    for band in ((0, 0.15), (0.85, 1)):
        assert ImageChops.difference(_columns(first, *band), _columns(second, *band)).getbbox() is None, band
    between = ImageChops.difference(_columns(first, 0.25, 0.75), _columns(second, 0.25, 0.75))
    assert sum(ImageStat.Stat(between).mean) / 3 > 1  # about 2.5 for SPAN x2 against the upload


def test_every_output_is_shown_at_a_readable_size_with_its_size_in_its_caption(report: dict, demo_out: Path):
    results = [entry["result"] for entry in log_line(demo_out)["outputs"]]
    shown = report["outputs"]
    assert sorted(tuple(o["natural"]) for o in shown) == sorted((r["width"], r["height"]) for r in results)
    for output in shown:
        width, height = output["natural"]
        assert output["loaded"] and output["shown"][0] >= 250, output
        assert re.search(rf"\b{width}x{height}\b", output["caption"]), output
        assert not output["caption_overflows"], output


def test_the_log_line_on_the_page_is_the_functions_log_line(report: dict, demo_out: Path):
    parsed = [entry for entry in report["log_lines"] if "parsed" in entry]
    assert len(parsed) == 1, report["log_lines"]
    assert parsed[0]["parsed"] == log_line(demo_out)
    assert min(parsed[0]["shown"]) > 0


def test_the_page_fits_a_laptop_and_a_phone_with_readable_text(report: dict):
    for screen, layout in report["layout"].items():
        assert layout["scroll_width"] <= layout["width"], (screen, layout)
        assert layout["overflowing"] == [], (screen, layout)
        assert layout["smallest_font_px"] >= 12, (screen, layout)


def test_the_first_screen_at_1280x800_is_not_blank(report: dict):
    with Image.open(report["screenshot"]) as screenshot:
        assert screenshot.size == (1280, 800)
        colours = screenshot.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 1000, len(colours or ())  # text and the photo, not a blank page


def test_the_check_sees_a_broken_image_and_a_slider_that_does_not_move(demo_out: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(demo_out, broken)
    page = broken / "index.html"
    text = page.read_text(encoding="utf-8")
    first_output = re.search(r'<figure>\s*<a href="[^"]+"><img src="([^"]+)"', text)
    assert first_output, text
    text = text.replace(f'<img src="{first_output[1]}"', '<img src="missing.png"', 1)
    page.write_text(re.sub(r"<script>.*?</script>", "", text, flags=re.S), encoding="utf-8")
    report = check_page(page, tmp_path / "shots")
    assert any("missing.png" in problem for problem in report["problems"]), report["problems"]
    assert [image["src"] for image in report["images"] if not image["loaded"]] == ["missing.png"]
    assert all(stop["after_share"] == pytest.approx(0.5, abs=0.03) for stop in report["slider"]["stops"])
