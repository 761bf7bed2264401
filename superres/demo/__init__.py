"""`make demo`: a photo goes in through the SDK, the COS trigger runs the function, CI's AISuperResolution writes the
result; the demo prints ProcessResults and writes a before/after picture (picture.py) and an HTML page (page.py)."""

from .picture import Comparison, side_by_side
from .run import DemoError, DemoOutput, DemoResult, run_demo

__all__ = ["Comparison", "DemoError", "DemoOutput", "DemoResult", "run_demo", "side_by_side"]
