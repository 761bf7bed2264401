"""OUT/index.html: the demo for people who would rather look in a browser. A before/after slider (the upload,
enlarged by the browser, over the AI result), every output, the before/after picture and the function's log line.
Self-contained: the images are referenced relatively (the folder can be moved or copied), no network, no library;
a few lines of inline script move the slider's cut. tests/clients/test_browser_demo_page.py reads it in Chromium."""

from __future__ import annotations

import json
from html import escape
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from .run import DemoOutput, DemoResult

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cos-superres demo: $key</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
  code { overflow-wrap: anywhere; }  /* a long key wraps instead of widening the page on a phone */
  /* The slider fits the window: never wider than the result, nor taller than 85% of the window's height. The
     range input lies, invisible, over the whole picture (drag anywhere on it, or use the arrow keys); --split
     (its value) places the cut and the line with the knob that marks it. */
  .slider { --split: 50%; position: relative; width: min(100%, ${width}px, calc(85vh * $width / $height));
            aspect-ratio: $width / $height; user-select: none; }
  .slider img { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: fill; }
  .slider .before { clip-path: inset(0 calc(100% - var(--split)) 0 0); }
  .slider .cut { position: absolute; top: 0; bottom: 0; left: var(--split); width: 2px; margin-left: -1px;
                 background: #fff; box-shadow: 0 0 3px rgba(0,0,0,.8); pointer-events: none; }
  .slider .cut::after { content: "\\25C0\\00A0\\25B6"; position: absolute; top: 50%; left: 50%;
                        transform: translate(-50%, -50%); padding: .2rem .5rem; border-radius: 1rem; background: #fff;
                        color: #222; font-size: .8rem; white-space: nowrap; box-shadow: 0 0 3px rgba(0,0,0,.8); }
  .slider:has(input:focus-visible) .cut, .slider:has(input:focus-visible) .cut::after { outline: 2px solid #1a73e8; }
  .slider .tag { position: absolute; top: .5rem; padding: .1rem .5rem; background: rgba(0,0,0,.65); color: #fff; }
  .slider .left { left: .5rem; } .slider .right { right: .5rem; }
  .slider input { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0; opacity: 0; cursor: ew-resize;
                  -webkit-appearance: none; appearance: none; }
  .slider input::-webkit-slider-thumb { -webkit-appearance: none; width: 2px; height: 100%; }
  .slider input::-moz-range-thumb { width: 2px; height: 100%; border: 0; }
  .outputs { display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: 1rem; }
  figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #ccc; }
  figcaption { font-size: .9rem; overflow-wrap: anywhere; }
  pre { background: #f4f4f4; padding: 1rem; overflow-x: auto; font-size: .85rem; }
</style>
</head>
<body>
<h1>cos-superres demo: <code>$key</code></h1>
<p>$summary</p>

<h2>Before / after</h2>
<p>Drag the line across the picture: left of it the upload ($input_size), enlarged by your browser; right of it
the result of AISuperResolution ($output_size, <code>$first_key</code>).</p>
<div class="slider">
  <img class="after" src="$after" alt="after: AISuperResolution, $output_size">
  <img class="before" src="$before" alt="before: the upload, $input_size, enlarged">
  <span class="cut"></span><span class="tag left">before</span><span class="tag right">after</span>
  <input type="range" min="0" max="100" value="50" step="any" aria-label="before/after split">
</div>
<script>
  // Follows the range as it moves, and on load (a browser may restore a moved range when the page is reopened).
  for (const slider of document.querySelectorAll('.slider')) {
    const range = slider.querySelector('input');
    const split = () => slider.style.setProperty('--split', range.value + '%');
    range.addEventListener('input', split);
    split();
  }
</script>

<h2>Every output</h2>
<div class="outputs">
$outputs
</div>

<h2>Side by side</h2>
<p><a href="$picture">$picture</a>: a bicubic enlargement and the AI result at the same size, the outlined area
zoomed below each.</p>
<p><a href="$picture"><img src="$picture" alt="before/after picture" style="width: 100%; height: auto"></a></p>

<h2>The function's log line</h2>
<p>From <a href="$log">$log</a>, pretty-printed:</p>
<pre>$log_line</pre>
</body>
</html>
""")

_OUTPUT = Template("""  <figure>
    <a href="$src"><img src="$src" alt="$key" loading="lazy"></a>
    <figcaption><code>$where</code><br>$what</figcaption>
  </figure>""")


def write_page(result: DemoResult) -> None:
    """Write result.page, next to the files it shows."""
    first = result.outputs[0]
    line = result.log_line
    input_size, output_size = _size(result.input_size), _size(first.size)
    count = len(result.outputs)
    summary = (f"The upload: {result.input_format} {input_size}; {count} output{'s' if count != 1 else ''}; "
               f"the function took {line.get('duration_ms')} ms.")
    page = _PAGE.substitute(
        key=escape(result.source_key), summary=escape(summary), width=first.size[0], height=first.size[1],
        input_size=input_size, output_size=output_size, first_key=escape(first.key),
        after=_href(first.path.name), before=_href(result.input_path.name),
        outputs="\n".join(_figure(output) for output in result.outputs),
        picture=_href(result.comparison.name), log=_href(result.log.name),
        log_line=escape(json.dumps(line, indent=2, ensure_ascii=False), quote=False),
    )
    result.page.write_text(page, encoding="utf-8")


def _figure(output: DemoOutput) -> str:
    magnify = f"x{output.magnify}, " if output.magnify else ""
    what = f"{output.format} {_size(output.size)}, {magnify}{output.status}; saved as {output.path.name}"
    return _OUTPUT.substitute(src=_href(output.path.name), key=escape(output.key),
                              where=escape(f"{output.bucket}/{output.key}"), what=escape(what))


def _href(name: str) -> str:
    """A file next to the page: relative, so the folder opens offline and can be moved."""
    return escape(quote(name))


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
