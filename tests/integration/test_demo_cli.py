"""`superres demo` as a user drives it (a subprocess, the bicubic engine for speed): the settings it runs with, what
it prints when it cannot finish, and the HTML page it writes next to the picture."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image, ImageChops

from superres.demo import side_by_side
from tests.unit.test_demo_picture import assert_readable

ROOT = Path(__file__).resolve().parents[2]


def demo(out: Path, *args: str, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    if env_file is not None:
        env["SUPERRES_ENV_FILE"] = str(env_file)
    return subprocess.run([sys.executable, "-m", "superres", "demo", "--engine", "bicubic", "--out", str(out), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the progress line printed before the stand-in starts."""
    return [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("starting ")]


def assert_short_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc)
    assert 1 <= len(lines) <= 2, proc.stderr
    assert all(len(line) <= 240 for line in lines), proc.stderr
    assert "{'" not in proc.stderr, proc.stderr  # no Python dict
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr
    return proc.stderr


def test_demo_refuses_an_invalid_magnify_in_env_with_the_settings_one_line(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("MAGNIFY=3\n", encoding="utf-8")
    proc = demo(tmp_path / "out", env_file=env_file)
    assert_short_error(proc, "MAGNIFY", "3")
    assert not (tmp_path / "out" / "before-after.png").exists()


def test_demo_runs_at_the_magnify_of_env(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("MAGNIFY=4\n", encoding="utf-8")
    proc = demo(tmp_path / "out", env_file=env_file)
    assert proc.returncode == 0, proc.stderr
    assert "input 512x512 -> output 2048x2048" in proc.stdout
    assert "MAGNIFY 4" in proc.stderr


def test_magnify_option_overrides_env(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("MAGNIFY=4\n", encoding="utf-8")
    proc = demo(tmp_path / "out", "--magnify", "2", env_file=env_file)
    assert proc.returncode == 0, proc.stderr
    assert "input 512x512 -> output 1024x1024" in proc.stdout


def test_a_skipped_upload_is_reported_in_one_line_with_the_reason(tmp_path: Path):
    proc = demo(tmp_path / "out", "--key", "uploads/astronaut.gif")
    assert_short_error(proc, "uploads/astronaut.gif", "suffix_not_accepted", "ACCEPTED_SUFFIXES",
                       "function-log.jsonl")


def test_a_non_image_jpg_is_reported_as_not_an_image_in_one_line(tmp_path: Path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("shopping list: milk, eggs\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = demo(out, "--file", str(fake))
    stderr = assert_short_error(proc, "uploads/notes.jpg", "InvalidImageFormat", "not an image")
    assert "BytesIO" not in stderr and "0x" not in stderr
    log = (out / "function-log.jsonl").read_text(encoding="utf-8")
    assert "InvalidImageFormat" in log and "BytesIO" not in log


def test_the_readme_bucket_example_runs_with_the_output_bucket_created(tmp_path: Path):
    out = tmp_path / "out"
    proc = demo(out, "--outputs", "x2/:2,x4/:4:webp:80@results-1250000000")
    assert proc.returncode == 0, proc.stderr
    assert "results-1250000000/superres/x4/uploads/astronaut.jpg.webp" in proc.stdout
    assert "photos-1250000000/superres/x2/uploads/astronaut.jpg.png" in proc.stdout
    with Image.open(out / "ai-1-astronaut.webp") as x4:
        assert (x4.format, x4.size) == ("WEBP", (2048, 2048))


def test_a_multi_output_run_prints_outputs_not_a_magnify_and_original_readably(tmp_path: Path):
    proc = demo(tmp_path / "out", "--outputs", "x2/:2,x4/:4:webp:80")
    assert proc.returncode == 0, proc.stderr
    assert "magnify 2" not in proc.stderr.lower() and "MAGNIFY" not in proc.stderr
    assert "OUTPUTS x2/:2,x4/:4:webp:80" in proc.stderr
    assert "original: 512x512 JPEG" in proc.stdout
    assert "{'" not in proc.stdout


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_pre = self._in_pre or tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        self._in_pre = self._in_pre and tag != "pre"

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre.append(data)


def test_the_html_page_shows_a_slider_every_output_and_the_log_line_with_no_network(tmp_path: Path):
    out = tmp_path / "out"
    proc = demo(out, "--outputs", "x2/:2,x4/:4:webp:80")
    assert proc.returncode == 0, proc.stderr
    page = out / "index.html"
    assert str(page) in proc.stdout
    text = page.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert parser.refs, text
    for ref in parser.refs:  # relative, inside OUT, present: the folder can be copied or opened offline
        assert "://" not in ref and not ref.startswith(("/", "//")), ref
        assert (out / ref).is_file(), ref
    assert {"ai-astronaut.png", "ai-1-astronaut.webp", "input-astronaut.jpg", "before-after.png"} <= set(parser.refs)
    assert any(tag == "input" and attrs.get("type") == "range" for tag, attrs in parser.tags)
    assert not any(tag in ("link", "iframe") for tag, _ in parser.tags)
    assert not any(tag == "script" and "src" in attrs for tag, attrs in parser.tags)
    line = [json.loads(raw) for raw in (out / "function-log.jsonl").read_text(encoding="utf-8").splitlines()
            if '"outcome"' in raw][-1]
    assert json.dumps(line, indent=2, ensure_ascii=False) in "".join(parser.pre)
    assert "superres/x4/uploads/astronaut.jpg.webp" in html.unescape(text)


def test_the_picture_written_is_titled_outlined_and_readable(tmp_path: Path):
    out = tmp_path / "out"
    proc = demo(out, "--magnify", "4")
    assert proc.returncode == 0, proc.stderr
    with Image.open(out / "input-astronaut.jpg") as before, Image.open(out / "ai-astronaut.png") as after:
        expected = side_by_side(before, after)
    with Image.open(out / "before-after.png") as written:
        assert written.size == expected.image.size and written.height >= 2048
        assert ImageChops.difference(written.convert("RGB"), expected.image).getbbox() is None
    assert_readable(expected)
    assert sorted(p.name for p in out.iterdir()) == ["ai-astronaut.png", "before-after.png", "function-log.jsonl",
                                                     "index.html", "input-astronaut.jpg"]
