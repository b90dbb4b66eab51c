"""Line charts as PNG files with no plotting library: panels of lines over a shared x axis, axis
ticks and labels in a 5 x 7 pixel font, a legend; written with zlib (the PNG format's own
compression). Enough for the main job's figure, in the manner of the paper's Figure 2."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

# 5 x 7 glyphs, one int per row (bit 4 = leftmost pixel). Text is drawn in upper case.
_GLYPHS = {
    " ": (0, 0, 0, 0, 0, 0, 0), ".": (0, 0, 0, 0, 0, 12, 12), ",": (0, 0, 0, 0, 12, 4, 8),
    "-": (0, 0, 0, 31, 0, 0, 0), "%": (24, 25, 2, 4, 8, 19, 3), "(": (2, 4, 8, 8, 8, 4, 2),
    ")": (8, 4, 2, 2, 2, 4, 8), "=": (0, 0, 31, 0, 31, 0, 0), ":": (0, 12, 12, 0, 12, 12, 0),
    "/": (1, 1, 2, 4, 8, 16, 16), "_": (0, 0, 0, 0, 0, 0, 31), "+": (0, 4, 4, 31, 4, 4, 0),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12), "A": (14, 17, 17, 31, 17, 17, 17),
    "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28), "E": (31, 16, 16, 30, 16, 16, 31),
    "F": (31, 16, 16, 30, 16, 16, 16), "G": (14, 17, 16, 23, 17, 17, 15),
    "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17), "Y": (17, 17, 10, 4, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
}  # fmt: skip

COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))
BLACK, GREY, WHITE = (0, 0, 0), (200, 200, 200), (255, 255, 255)


@dataclass
class Panel:
    """One chart: a title, and lines {label: (xs, ys)} drawn over the shared x axis."""

    title: str
    lines: dict[str, tuple[list[float], list[float]]]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.pixels = np.full((height, width, 3), 255, dtype=np.uint8)

    def point(self, x: int, y: int, color, size: int = 1) -> None:
        """A size x size square at (x, y), cut to the canvas."""
        height, width, _ = self.pixels.shape
        top, left = y - size // 2, x - size // 2
        bottom, right = min(top + size, height), min(left + size, width)
        top, left = max(top, 0), max(left, 0)
        if top < bottom and left < right:
            self.pixels[top:bottom, left:right] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, color, width: int = 1) -> None:
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for i in range(steps + 1):
            t = i / steps
            self.point(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), color, width)

    def text(self, x: int, y: int, string: str, color=BLACK, scale: int = 1) -> None:
        for index, char in enumerate(string.upper()):
            rows = _GLYPHS.get(char, _GLYPHS[" "])
            for row, bits in enumerate(rows):
                for column in range(5):
                    if bits & (16 >> column):
                        left = x + (index * 6 + column) * scale
                        self.pixels[
                            y + row * scale : y + (row + 1) * scale, left : left + scale
                        ] = color

    def png(self) -> bytes:
        height, width, _ = self.pixels.shape
        raw = b"".join(b"\x00" + self.pixels[row].tobytes() for row in range(height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data))
            )

        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About count round values, from one at or below low to one at or above high."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    start = math.floor(low / step + 1e-9) * step
    steps = math.ceil((high - start) / step - 1e-9)
    return [start + i * step for i in range(steps + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def draw_panel(canvas: Canvas, panel: Panel, box: tuple[int, int, int, int], x_label: str) -> None:
    left, top, width, height = box
    xs = [x for line_xs, _ in panel.lines.values() for x in line_xs]
    ys = [y for _, line_ys in panel.lines.values() for y in line_ys if math.isfinite(y)]
    x_low, x_high = min(xs, default=0.0), max(xs, default=1.0)
    y_ticks = _ticks(min(ys, default=0.0), max(ys, default=1.0))
    y_low, y_high = y_ticks[0], max(y_ticks[-1], y_ticks[0] + 1e-12)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x_low) / ((x_high - x_low) or 1.0) * width
        return px, top + height - (y - y_low) / (y_high - y_low) * height

    for tick in y_ticks:
        _, py = to_pixel(x_low, tick)
        canvas.line(left, py, left + width, py, GREY)
        canvas.text(left - 6 * len(_label(tick)) - 4, round(py) - 3, _label(tick))
    for tick in _ticks(x_low, x_high):
        px, _ = to_pixel(tick, y_low)
        canvas.text(round(px) - 3 * len(_label(tick)), top + height + 6, _label(tick))
    canvas.line(left, top + height, left + width, top + height, BLACK)
    canvas.line(left, top, left, top + height, BLACK)
    canvas.text(left, top - 16, panel.title, scale=2)
    canvas.text(left + width // 2 - 3 * len(x_label), top + height + 20, x_label)
    for color, (line_xs, line_ys) in zip(COLORS, panel.lines.values()):
        points = [to_pixel(x, y) for x, y in zip(line_xs, line_ys) if math.isfinite(y)]
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            canvas.line(x0, y0, x1, y1, color, width=2)
        for x, y in points:
            canvas.point(round(x), round(y), color, size=4)


def line_chart(panels: list[Panel], x_label: str, path: str) -> None:
    """Writes the panels side by side, with one legend of their lines' labels, to path."""
    panel_width, panel_height, margin = 300, 220, 70
    width = len(panels) * (panel_width + margin) + margin
    canvas = Canvas(width, panel_height + 150)
    for index, panel in enumerate(panels):
        box = (margin + index * (panel_width + margin), 40, panel_width, panel_height)
        draw_panel(canvas, panel, box, x_label)
    labels = list(panels[0].lines) if panels else []
    for index, (color, label) in enumerate(zip(COLORS, labels)):
        x, y = margin + index * 260, panel_height + 110
        canvas.line(x, y + 3, x + 24, y + 3, color, width=3)
        canvas.text(x + 32, y, label)
    with open(path, "wb") as handle:
        handle.write(canvas.png())
