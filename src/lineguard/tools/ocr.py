"""Reading printed text: lot codes, expiry dates, part numbers (numpy + OpenCV + ONNX Runtime).

Text is found by RapidOCR's detector (PP-OCR, its ONNX models ship in the `rapidocr` wheel) and read
by its recogniser, which we run ourselves so that decoding is limited to the characters a code can
hold (a printed ``0`` is never read as a CJK box) and every character keeps its confidence and its
runner-up alternatives (what expectation-guided reading in ``verify`` works from).

Debian's Tesseract (``apt install tesseract-ocr``) is the light fallback (``engine: tesseract``, or
``auto`` without RapidOCR): it reads the same prepared page, limited to the same characters, with
the per-character confidences of its LSTM (no runner-ups), and is weaker on dot-matrix print
(docs/benchmarks.md).

Dot-matrix and inkjet print is prepared first: the dots of a character do not touch, which
detectors and recognisers trained on solid print do not take. The dots are found on a flattened
background, their diameter estimated, and a closing of about two diameters joins them into strokes;
the printed region is located from the joined strokes and deskewed before reading.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

PrintKind = Literal["auto", "dot_matrix", "solid"]
Polarity = Literal["dark", "light"]
Engine = Literal["auto", "rapidocr", "tesseract"]
TESSERACT_TIMEOUT_S = 30.0  # one prepared page; a hung process is this part's failure, not the station's

# What codes on parts hold; anything else the recogniser knows (18 000 CJK and symbol classes) is
# masked out of the decoding.
DEFAULT_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + " -.:/()#+,%&*'_"
REC_HEIGHT = 48  # the recogniser's input height
CHAR_HEIGHT_PX = 32  # characters are scaled to about this height before detection and reading
MAX_READ_SIDE = 1600  # the detector's input is bounded (time, memory) whatever the camera
ALTERNATIVES = 3  # runner-up characters kept per position
DOTTED_PIECES_RATIO = 2.5  # print is dot-matrix when joining its dots removes this share of pieces
MIN_TEXTNESS = 0.8  # a word whose reading lies this little inside the charset is a symbol, not text
MAX_DOTS_FOR_PITCH = 3000  # lone dots the pitch is measured on (pairwise distances)
MIN_WORD_HEIGHT = 0.75  # of the line's tallest word: smaller detections are symbols
NOISE_DEVIATIONS = 5.0  # ink lies this many background noise deviations beyond the surface
CONTEXT_ALTERNATIVE = 0.2  # a runner-up this likely may replace a character its word contradicts
# A space: an empty stretch of at least this many character advances (see _spaced).
SPACE_CELLS_FIXED = 0.9
SPACE_CELLS_PROPORTIONAL = 0.45


class OcrUnavailable(RuntimeError):
    """No OCR engine is installed (``pip install "lineguard[tools]"``, or Debian's tesseract-ocr)."""


def tesseract_path() -> str | None:
    import shutil

    return shutil.which("tesseract")


def _engine(engine: Engine) -> Literal["rapidocr", "tesseract"]:
    """The engine to read with: ``auto`` is RapidOCR when installed, else Tesseract when it is."""
    if engine == "auto":
        engine = "rapidocr" if _rapidocr_installed() or tesseract_path() is None else "tesseract"
    if engine == "tesseract":
        if tesseract_path() is None:
            raise OcrUnavailable("engine tesseract: no tesseract on PATH (Debian: apt install tesseract-ocr)")
        return "tesseract"
    return "rapidocr"  # its models are found (or OcrUnavailable says how to install them) next


def _rapidocr_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("rapidocr") is not None


@dataclass(frozen=True)
class CharReading:
    char: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()  # runner-ups, most likely first


@dataclass(frozen=True)
class TextLine:
    chars: tuple[CharReading, ...]
    box: np.ndarray  # 4 x 2 corners in the input image's pixels (a rotated rectangle when deskewed)

    @property
    def text(self) -> str:
        return "".join(c.char for c in self.chars)

    @property
    def confidence(self) -> float:
        return float(np.mean([c.confidence for c in self.chars])) if self.chars else 0.0


@dataclass(frozen=True)
class TextReading:
    """What was read, top line first. ``angle_deg``: the print's skew that was corrected."""

    lines: tuple[TextLine, ...]
    angle_deg: float = 0.0
    dot_diameter_px: float | None = None  # estimated for dot-matrix print
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Lines joined by a single space."""
        return " ".join(line.text for line in self.lines if line.text)

    @property
    def chars(self) -> tuple[CharReading, ...]:
        return tuple(c for line in self.lines for c in line.chars)

    @property
    def confidence(self) -> float:
        """Mean per-character confidence; 0 when nothing was read."""
        chars = self.chars
        return float(np.mean([c.confidence for c in chars])) if chars else 0.0


def _rapidocr_models() -> Path:
    try:
        import rapidocr
    except ImportError as exc:
        raise OcrUnavailable(
            'OCR needs RapidOCR, which ships its ONNX models: pip install "lineguard[tools]"'
        ) from exc
    return Path(rapidocr.__file__).parent / "models"


class _Recogniser:
    """PP-OCR's CTC recogniser with decoding restricted to a character set."""

    def __init__(self, model: Path, charset: str, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise OcrUnavailable(f"{model}: no character list in the model's metadata")
        classes = ["<blank>", *meta["character"].splitlines()]
        n_out = self.session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out == len(classes) + 1:
            classes.append(" ")
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted(set(charset) - set(index))
        if missing:
            raise ValueError(f"charset: the recogniser cannot read {''.join(missing)!r}")
        self.columns = np.array([0, *sorted({index[c] for c in charset})])
        self.names = [classes[i] for i in self.columns]

    def read(self, word: np.ndarray) -> tuple[list[tuple[float, CharReading]], float]:
        """One deskewed word or line (grey uint8, dark print on light): its characters with the
        x position (in ``word``'s pixels) where each was read, spaces left out (the print's
        geometry places them), and the share of the recogniser's belief that fell inside the
        character set (low for a logo or a symbol: not text)."""
        h, w = word.shape[:2]
        width = max(REC_HEIGHT, round(w * REC_HEIGHT / max(h, 1)))
        resized = cv2.resize(word, (width, REC_HEIGHT), interpolation=cv2.INTER_AREA)
        x = np.repeat(((resized.astype(np.float32) / 255.0 - 0.5) / 0.5)[None, None], 3, axis=1)
        full = self.session.run(None, {self.session.get_inputs()[0].name: x})[0][0]
        inside = full[:, self.columns]
        mass = inside.sum(axis=1)
        probs = inside / np.maximum(mass[:, None], 1e-12)
        best = probs.argmax(axis=1)
        step = w / len(best)
        chars: list[tuple[float, CharReading]] = []
        textness: list[float] = []
        previous = -1
        for t, k in enumerate(best):
            if k != 0 and self.names[k] != " ":
                if k != previous:
                    order = np.argsort(-probs[t])
                    runner_ups = tuple(
                        (self.names[j], float(probs[t, j]))
                        for j in order[1 : ALTERNATIVES + 1]
                        if j != 0 and self.names[j] != " "
                    )
                    reading = CharReading(self.names[k], float(probs[t, k]), runner_ups)
                    chars.append(((t + 0.5) * step, reading))
                    textness.append(float(mass[t]))
                elif probs[t, k] > chars[-1][1].confidence:
                    at, old = chars[-1]
                    chars[-1] = (at, CharReading(old.char, float(probs[t, k]), old.alternatives))
            previous = int(k)
        return chars, (float(np.mean(textness)) if textness else 0.0)


def _ink(grey: np.ndarray, polarity: Polarity) -> tuple[np.ndarray, np.ndarray]:
    """(print intensity on a flattened background, the print's pixels as a 0/255 mask).

    Flattening takes out glossy, curved and unevenly lit surfaces. The threshold is Otsu's, but
    never below five noise deviations of the background (estimated robustly from the median
    absolute deviation): a small code in a large noisy frame must not turn the noise into ink.
    """
    sigma = max(grey.shape) / 80.0
    smooth = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    background = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), sigma)
    signal = background - smooth if polarity == "dark" else smooth - background
    noise = 1.4826 * float(np.median(np.abs(signal - np.median(signal))))
    signal8 = np.clip(signal, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(signal8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(float(otsu), float(np.median(signal)) + NOISE_DEVIATIONS * noise)
    return signal8, np.where(signal > threshold, 255, 0).astype(np.uint8)


def _dots(ink: np.ndarray) -> tuple[float, float]:
    """(dot diameter, dot pitch) of the ink: the diameter is the median stroke width of its
    pieces; the pitch the median distance from a lone dot (a round piece about one dot in size)
    to its nearest lone dot, or the diameter where dots already touch (too few lone ones)."""
    n, labels, stats, centres = cv2.connectedComponentsWithStats(ink)
    distance = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
    widths = []
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area < 6:
            continue  # speckle
        inside = labels[y : y + h, x : x + w] == i
        widths.append(2.0 * float(distance[y : y + h, x : x + w][inside].max()))
    if not widths:
        return 0.0, 0.0
    diameter = float(np.median(widths))
    w, h, area = stats[1:, 2], stats[1:, 3], stats[1:, 4]
    lone = (
        (np.maximum(w, h) <= 1.5 * diameter + 1) & (area >= 0.3 * diameter**2) & (area <= 1.5 * diameter**2)
    )
    points = centres[1:][lone][:MAX_DOTS_FOR_PITCH]
    if len(points) < 10:
        return diameter, diameter
    gaps = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(gaps, np.inf)
    return diameter, float(np.median(gaps.min(axis=1)))


def _pieces(ink: np.ndarray) -> int:
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink)
    return int((stats[1:, 4] >= 6).sum())


def _join_dots(ink: np.ndarray, diameter: float, pitch: float) -> np.ndarray:
    """Close the gaps between a dot and its eight neighbours of the character grid (the diagonal
    ones are sqrt(2) pitches away), so a character's strokes become solid."""
    gap = np.sqrt(2.0) * pitch - diameter
    k = round(float(np.clip(gap + 1.0, diameter, 2.5 * diameter))) | 1
    return cv2.morphologyEx(ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


class TextReader:
    """Find and read the printed text in an image.

    ``print``: ``dot_matrix`` joins separate dots into strokes first; ``solid`` reads as it is;
    ``auto`` decides per image from the shape of the print's components. ``polarity``: ``dark``
    print on a light surface, or ``light`` on dark. ``charset``: the characters decoding may give.
    ``engine``: ``rapidocr``, ``tesseract``, or ``auto`` (RapidOCR when installed, else Tesseract).
    """

    def __init__(
        self,
        print: PrintKind = "auto",
        polarity: Polarity = "dark",
        charset: str = DEFAULT_CHARSET,
        min_confidence: float = 0.5,
        threads: int = 1,
        engine: Engine = "auto",
    ) -> None:
        if not charset:
            raise ValueError("charset: empty")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence: {min_confidence} is not in [0, 1]")
        self.print, self.polarity, self.charset = print, polarity, charset
        self.min_confidence, self.threads = min_confidence, threads
        self.engine = _engine(engine)
        self._lock = threading.Lock()  # the detector object is not documented as thread-safe
        if self.engine == "rapidocr":
            models = _rapidocr_models()
            self._recogniser = _Recogniser(models / "PP-OCRv6_rec_small.onnx", charset, threads)
            self._detector = self._make_detector(models)

    def _make_detector(self, models: Path) -> Any:
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        params = {
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Global.use_rec": False,
            "Det.model_path": str(models / "PP-OCRv6_det_small.onnx"),
            "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        return RapidOCR(params=params)

    # -- preparing -------------------------------------------------------------------------

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float, float | None, np.ndarray]:
        """The image as the detector should see it: grey, dark print on white, dots joined,
        deskewed and scaled to ``CHAR_HEIGHT_PX``. Returns (image, angle, dot diameter, the 3x3
        transform from the input's pixels to the prepared image's)."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if grey.dtype != np.uint8:
            raise ValueError(f"OCR takes 8-bit images, got {grey.dtype}")
        signal, ink = _ink(grey, self.polarity)
        diameter, pitch = _dots(ink)
        joined = _join_dots(ink, diameter, pitch) if diameter > 0 else ink
        # Dot-matrix print falls apart into several pieces per character, which joining dots
        # of about their own diameter apart brings together; solid print barely changes.
        dotted = diameter > 0 and (
            self.print == "dot_matrix"
            or (self.print == "auto" and _pieces(ink) >= DOTTED_PIECES_RATIO * max(_pieces(joined), 1))
        )
        if dotted:
            strokes = joined
            page = 255 - strokes  # the reader sees clean strokes, dark on white
        else:
            strokes = ink
            page = 255 - cv2.normalize(signal, None, 0, 255, cv2.NORM_MINMAX)
        angle, crop, char_h = _locate(strokes, diameter if dotted else None)
        to_page = np.eye(3)
        if crop is not None:
            x, y, w, h = crop
            page = page[y : y + h, x : x + w]
            to_page = np.array([[1.0, 0, -x], [0, 1.0, -y], [0, 0, 1.0]])
        if angle:
            centre = (page.shape[1] / 2.0, page.shape[0] / 2.0)
            rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
            page = cv2.warpAffine(page, rotation, (page.shape[1], page.shape[0]), borderValue=255)
            to_page = np.vstack([rotation, [0, 0, 1.0]]) @ to_page
        scale = min(1.0, CHAR_HEIGHT_PX / char_h) if char_h else 1.0
        scale = min(scale, MAX_READ_SIDE / max(page.shape[:2]))
        if scale < 1.0:
            size = (round(page.shape[1] * scale), round(page.shape[0] * scale))
            sx, sy = size[0] / page.shape[1], size[1] / page.shape[0]
            page = cv2.resize(page, size, interpolation=cv2.INTER_AREA)
            # INTER_AREA maps pixel centres: x' = (x + 0.5) * s - 0.5
            to_page = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]]) @ to_page
        page = cv2.copyMakeBorder(page, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
        to_page = np.array([[1.0, 0, 16], [0, 1.0, 16], [0, 0, 1.0]]) @ to_page
        return page, angle, (diameter if dotted else None), to_page

    # -- reading ---------------------------------------------------------------------------

    def read(self, image: np.ndarray) -> TextReading:
        import time

        start = time.perf_counter()
        page, angle, diameter, to_page = self.prepare(image)
        to_input = np.linalg.inv(to_page)
        prepared = time.perf_counter()
        if self.engine == "tesseract":
            read = self._tesseract(page, to_input)
            timings = {
                "prepare": 1e3 * (prepared - start),
                "tesseract": 1e3 * (time.perf_counter() - prepared),
            }
            return TextReading(tuple(read), angle, diameter, timings)
        with self._lock:
            found = self._detector(
                cv2.cvtColor(page, cv2.COLOR_GRAY2BGR), use_det=True, use_cls=False, use_rec=False
            )
        detected = time.perf_counter()
        boxes = [] if found.boxes is None else [np.asarray(b, np.float32) for b in found.boxes]
        ink = page < 128
        lines: list[TextLine] = []
        for words in _lines(boxes):
            placed: list[tuple[float, CharReading]] = []
            tallest = max(float(np.ptp(b[:, 1])) for b in words)
            for box in words:
                if float(np.ptp(box[:, 1])) < MIN_WORD_HEIGHT * tallest:
                    continue  # a symbol or logo printed beside the line, smaller than its text
                crop, x0 = _word_crop(page, box)
                if crop is None:
                    continue
                chars, textness = self._recogniser.read(crop)
                word_confidence = float(np.mean([c.confidence for _, c in chars])) if chars else 0.0
                if textness >= MIN_TEXTNESS and word_confidence >= self.min_confidence:
                    placed.extend((x0 + at, c) for at, c in chars)
            if placed:
                placed.sort(key=lambda pc: pc[0])
                band = np.concatenate(words)
                spaced = _spaced(placed, ink, band, diameter is not None)
                corners = _union(words)
                in_input = (to_input[:2, :2] @ corners.T).T + to_input[:2, 2]
                lines.append(TextLine(_in_context(spaced), in_input.astype(np.float32)))
        end = time.perf_counter()
        timings = {
            "prepare": 1e3 * (prepared - start),
            "detect": 1e3 * (detected - prepared),
            "recognise": 1e3 * (end - detected),
        }
        return TextReading(tuple(lines), angle, diameter, timings)

    def _tesseract(self, page: np.ndarray, to_input: np.ndarray) -> list[TextLine]:
        """The prepared page read by Tesseract (one block of lines, the charset whitelisted),
        each character with its own confidence from the hOCR it writes."""
        import subprocess

        _, png = cv2.imencode(".png", page)
        whitelist = self.charset if " " in self.charset else self.charset + " "  # words need spaces
        command = [
            str(tesseract_path()),
            "stdin",
            "stdout",
            "--psm",
            "6",
            "-c",
            f"tessedit_char_whitelist={whitelist}",
            "-c",
            "hocr_char_boxes=1",
            "hocr",
        ]
        try:
            done = subprocess.run(
                command, input=png.tobytes(), capture_output=True, timeout=TESSERACT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"tesseract took over {TESSERACT_TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"tesseract failed: {message[-1] if message else done.returncode}")
        lines = []
        for words in _hocr_lines(done.stdout):
            kept = [w for w in words if w[0] and np.mean([c.confidence for c in w[0]]) >= self.min_confidence]
            if not kept:
                continue
            chars: list[CharReading] = []
            for chars_of_word, _ in kept:
                if chars:
                    chars.append(CharReading(" ", 1.0))
                chars.extend(chars_of_word)
            x0 = min(b[0] for _, b in kept)
            y0 = min(b[1] for _, b in kept)
            x1 = max(b[2] for _, b in kept)
            y1 = max(b[3] for _, b in kept)
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
            in_input = (to_input[:2, :2] @ corners.T).T + to_input[:2, 2]
            lines.append(TextLine(tuple(chars), in_input.astype(np.float32)))
        return lines


def _hocr_lines(document: bytes) -> list[list[tuple[list[CharReading], tuple[float, ...]]]]:
    """Tesseract's hOCR (its own output, from our page) as lines of words: each word's characters
    with their confidences (0..1) and its bbox."""
    import re
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.fromstring(document)
    ns = "{http://www.w3.org/1999/xhtml}"
    lines = []
    for line in root.iter(f"{ns}span"):
        if line.get("class") != "ocr_line":
            continue
        words = []
        for word in line.iter(f"{ns}span"):
            if word.get("class") != "ocrx_word":
                continue
            box = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)", word.get("title", ""))
            chars = []
            for info in word.iter(f"{ns}span"):
                conf = re.search(r"x_conf ([\d.]+)", info.get("title", ""))
                if info.get("class") == "ocrx_cinfo" and info.text and conf:
                    chars.append(CharReading(info.text, min(float(conf.group(1)) / 100.0, 1.0)))
            if box and chars:
                words.append((chars, tuple(float(v) for v in box.groups())))
        if words:
            lines.append(words)
    return lines


def _locate(
    strokes: np.ndarray, diameter: float | None
) -> tuple[float, tuple[int, int, int, int] | None, float]:
    """(skew angle in degrees, crop around the print, median character height) from the ink.

    The print is the densest cluster of ink and the clusters near it in size; specks and
    scratches far smaller are left out, so a small code in a large frame is found and read at
    a useful scale.
    """
    height, width = strokes.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strokes)
    if n <= 1:
        return 0.0, None, 0.0
    heights = stats[1:, 3][stats[1:, 4] >= 12]
    typical = float(np.median(heights)) / 4.0 if heights.size else 4.0
    reach = 3.0 * (diameter if diameter else max(typical, 2.0))
    k = round(2 * reach) | 1
    clusters = cv2.dilate(strokes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    m, cluster_labels, _, _ = cv2.connectedComponentsWithStats(clusters)
    ink_per_cluster = np.bincount(cluster_labels[strokes > 0], minlength=m)[1:]
    keep = 1 + np.nonzero(ink_per_cluster >= 0.1 * ink_per_cluster.max())[0]
    text = np.isin(cluster_labels, keep) & (strokes > 0)
    ys, xs = np.nonzero(text)
    if xs.size < 20:
        return 0.0, None, 0.0
    (_, _), (w, h), angle = cv2.minAreaRect(np.stack([xs, ys], axis=1).astype(np.float32))
    if w < h:
        angle += 90.0
    if angle > 45.0:
        angle -= 180.0
    if abs(angle) > 45.0:
        angle = 0.0
    # Characters: the kept components taller than a dot (dots of a character are joined already).
    kept_components = np.unique(labels[text])
    kept_components = kept_components[kept_components > 0]
    char_heights = stats[kept_components, 3]
    floor = 2.0 * diameter if diameter else 4.0
    char_heights = char_heights[char_heights >= floor]
    char_h = float(np.median(char_heights)) * float(np.cos(np.radians(angle))) if char_heights.size else 0.0
    margin = round(max(2.0 * reach, 0.5 * char_h))
    x0, y0 = max(int(xs.min()) - margin, 0), max(int(ys.min()) - margin, 0)
    x1, y1 = min(int(xs.max()) + margin + 1, width), min(int(ys.max()) + margin + 1, height)
    return float(angle), (x0, y0, x1 - x0, y1 - y0), char_h


def _lines(boxes: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Detected word boxes grouped into text lines (vertical overlap), top to bottom."""
    boxes = sorted(boxes, key=lambda b: float(b[:, 1].mean()))
    groups: list[list[np.ndarray]] = []
    for box in boxes:
        top, bottom = float(box[:, 1].min()), float(box[:, 1].max())
        for group in groups:
            g_top = min(float(b[:, 1].min()) for b in group)
            g_bottom = max(float(b[:, 1].max()) for b in group)
            overlap = min(bottom, g_bottom) - max(top, g_top)
            if overlap > 0.5 * min(bottom - top, g_bottom - g_top):
                group.append(box)
                break
        else:
            groups.append([box])
    return groups


def _union(boxes: list[np.ndarray]) -> np.ndarray:
    points = np.concatenate(boxes)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _word_crop(page: np.ndarray, box: np.ndarray) -> tuple[np.ndarray | None, int]:
    x0, y0 = np.floor(box.min(axis=0)).astype(int)
    x1, y1 = np.ceil(box.max(axis=0)).astype(int)
    x0, y0 = max(int(x0), 0), max(int(y0), 0)
    x1, y1 = min(int(x1), page.shape[1]), min(int(y1), page.shape[0])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None, x0
    return page[y0:y1, x0:x1], x0


def _spaced(
    placed: list[tuple[float, CharReading]], ink: np.ndarray, band: np.ndarray, fixed_pitch: bool
) -> tuple[CharReading, ...]:
    """A line's characters, left to right, with a space wherever the print leaves an empty
    stretch between two characters of at least a character cell (fixed-pitch dot-matrix print)
    or half a character advance (proportional solid print), and nowhere else: the recogniser's
    own spaces follow glyph shapes, not the layout."""
    if len(placed) < 2:
        return tuple(c for _, c in placed)
    y0 = max(int(np.floor(band[:, 1].min())), 0)
    y1 = min(int(np.ceil(band[:, 1].max())), ink.shape[0])
    x0 = max(int(np.floor(band[:, 0].min())), 0)
    x1 = min(int(np.ceil(band[:, 0].max())), ink.shape[1])
    columns = ink[y0:y1, x0:x1].any(axis=0)
    advance = float(np.median(np.diff([at for at, _ in placed])))
    least = (SPACE_CELLS_FIXED if fixed_pitch else SPACE_CELLS_PROPORTIONAL) * advance
    gaps: list[float] = []  # centres of empty stretches wide enough to be a space
    start = None
    for i, filled in enumerate([*columns.astype(bool).tolist(), True]):
        if not filled and start is None:
            start = i
        elif filled and start is not None:
            if i - start >= least and start > 0 and i < columns.size:
                gaps.append(x0 + (start + i) / 2.0)
            start = None
    out: list[CharReading] = []
    for (at, char), following in zip(placed, [*placed[1:], None], strict=False):
        out.append(char)
        if following is not None and any(at < g < following[0] for g in gaps):
            out.append(CharReading(" ", 1.0))
    return tuple(out)


def _in_context(chars: tuple[CharReading, ...]) -> tuple[CharReading, ...]:
    """Letters among letters, digits among digits: in a word that is otherwise all letters (or
    all digits), a character of the other kind whose runner-up is of the word's kind and at least
    ``CONTEXT_ALTERNATIVE`` likely is read as that runner-up (a dot-matrix ``O`` and ``0`` are often
    the same glyph). Mixed words such as lot codes are left exactly as read."""
    out = list(chars)
    start = 0
    for end in range(len(out) + 1):
        if end < len(out) and out[end].char.isalnum():
            continue
        word = out[start:end]
        for kind in (str.isalpha, str.isdigit):
            others = [c for c in word if not kind(c.char)]
            if len(word) >= 3 and len(others) == 1:
                i = start + word.index(others[0])
                for alternative, p in out[i].alternatives:
                    if kind(alternative) and p >= CONTEXT_ALTERNATIVE:
                        was = out[i]
                        out[i] = CharReading(alternative, p, ((was.char, was.confidence),))
                        break
        start = end + 1
    return tuple(out)
