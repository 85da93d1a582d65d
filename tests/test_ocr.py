"""The dot-matrix OCR reader: the real photos, generated print of known text, solid print, and the
edges (blank image, restricted character set, bad input)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import shared_dataset
from rapidfuzz.distance import Levenshtein

from lineguard.data.image_io import read_image
from lineguard.tools.ocr import TextReader
from lineguard.tools.synthetic import DotPrint, random_code, random_style, render_lines

pytest.importorskip("rapidocr")


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader(threads=1)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "lines"),
    [("A_0.png", ["LOTTO:L21X45", "SCAD. :10-2023"]), ("B_9.png", ["L21X7A", "10-2023"])],
)
def test_reads_both_lines_of_the_real_photos(reader: TextReader, name: str, lines: list[str]) -> None:
    # Text over a small part of a 2056 x 2464 frame: the reader has to find it itself.
    image = read_image(shared_dataset("ocr-dotmatrix-pvc") / name)
    reading = reader.read(image)
    assert [line.text for line in reading.lines] == lines
    assert reading.dot_diameter_px is not None  # recognised as dot-matrix print
    assert all(0.0 < c.confidence <= 1.0 for c in reading.chars)


def test_reads_generated_dot_matrix_lines_in_a_large_frame(reader: TextReader) -> None:
    # Print styles drawn over the range real coders cover (pitch, dot size, skew, blur, noise);
    # the measured accuracy over 200 lines is in docs/benchmarks.md, this bound leaves room.
    rng = np.random.default_rng(7)
    errors = chars = 0
    for _ in range(6):
        truth = [f"LOT {random_code(rng, 6)}", f"EXP {int(rng.integers(1, 13)):02d}-2027"]
        reading = reader.read(render_lines(truth, random_style(rng), rng, frame=(700, 1100)))
        read = [line.text for line in reading.lines]
        assert len(read) == 2, read
        errors += sum(Levenshtein.distance(t, r) for t, r in zip(truth, read, strict=True))
        chars += sum(len(t) for t in truth)
    assert 1.0 - errors / chars >= 0.9


def test_deskews_and_reads_a_clean_skewed_code_exactly(reader: TextReader) -> None:
    rng = np.random.default_rng(3)
    style = DotPrint(dot_diameter=6.0, pitch=9.0, jitter=0.3, skew_deg=6.0, noise=4.0)
    reading = reader.read(render_lines(["L24X7B 09-2028"], style, rng, frame=(400, 900)))
    assert reading.text == "L24X7B 09-2028"
    assert abs(abs(reading.angle_deg) - 6.0) < 1.5
    assert reading.dot_diameter_px == pytest.approx(6.0, abs=1.5)


def test_reads_solid_print_as_solid(reader: TextReader) -> None:
    image = np.full((160, 640), 225, np.uint8)
    cv2.putText(image, "PN 4471-20", (30, 100), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 30, 5, cv2.LINE_AA)
    reading = reader.read(image)
    assert reading.text == "PN 4471-20"
    assert reading.dot_diameter_px is None


def test_reads_light_print_on_a_dark_surface() -> None:
    rng = np.random.default_rng(5)
    dark_on_light = render_lines(["A7K9"], DotPrint(pitch=9.0, dot_diameter=6.0), rng)
    reading = TextReader(polarity="light").read(255 - dark_on_light)
    assert reading.text == "A7K9"


def test_decoding_stays_inside_the_character_set() -> None:
    # A date field read with digits and '-' only: a dot-matrix 'O' cannot come back as a letter.
    rng = np.random.default_rng(11)
    image = render_lines(["10-2030"], DotPrint(pitch=9.0, dot_diameter=6.5), rng)
    reading = TextReader(charset="0123456789-").read(image)
    assert reading.text == "10-2030"
    assert set(reading.text) <= set("0123456789-")
    for char in reading.chars:
        assert all(alt in "0123456789-" for alt, _ in char.alternatives)


def test_a_blank_surface_reads_nothing(reader: TextReader) -> None:
    rng = np.random.default_rng(0)
    blank = np.clip(200 + rng.normal(0, 5, (480, 640)), 0, 255).astype(np.uint8)
    reading = reader.read(blank)
    assert reading.lines == ()
    assert reading.text == "" and reading.confidence == 0.0


def test_bad_input_and_settings_are_refused(reader: TextReader) -> None:
    with pytest.raises(ValueError, match="8-bit"):
        reader.read(np.zeros((64, 64), np.uint16))
    with pytest.raises(ValueError, match="charset"):
        TextReader(charset="")
    with pytest.raises(ValueError, match="cannot read"):
        TextReader(charset="ABC\t")
    with pytest.raises(ValueError, match="min_confidence"):
        TextReader(min_confidence=1.5)
    with pytest.raises(ValueError, match="font"):
        DotPrint(font="7x9")
    with pytest.raises(ValueError, match="font has only"):
        render_lines(["a"], DotPrint(), np.random.default_rng(0))


# -- the OCR check: verification against the part, dates, doubtful readings --------------------


def _code(text: str, seed: int = 1) -> np.ndarray:
    style = DotPrint(dot_diameter=6.0, pitch=9.0, jitter=0.3, noise=4.0)
    return render_lines([text], style, np.random.default_rng(seed))


def test_the_ocr_check_verifies_against_the_part_id_and_the_expiry_rule() -> None:
    from datetime import date

    from lineguard.decision import Decision
    from lineguard.tools.checks import OcrTool
    from lineguard.tools.config import OcrToolConfig

    config = OcrToolConfig(
        kind="ocr", expect="LOT {part_id} EXP \\d{2}-\\d{4}", expiry={"format": "%m-%Y", "min_months": 6}
    )
    tool = OcrTool(config, today=lambda: date(2026, 12, 4))
    image = _code("LOT L24X7B EXP 09-2028")
    result = tool.run(image, "L24X7B")
    assert result.decision == Decision.OK, result.reason
    text, expiry = result.measurements
    assert text.text == "LOT L24X7B EXP 09-2028" and len(text.detail) == 19 and text.decision == "OK"
    assert expiry.value == 21 and expiry.lo == 6 and expiry.decision == "OK"
    assert result.overlay is not None and result.overlay.shape[:2] == image.shape[:2]
    wrong = tool.run(image, "L24X7C")  # the PLC said another lot
    assert wrong.decision == Decision.NG and "expected" in wrong.reason
    assert tool.run(image, "L24.*").decision == Decision.NG  # a part ID is taken literally, not as a regex
    soon = OcrTool(config, today=lambda: date(2028, 6, 1)).run(image, "L24X7B")
    assert soon.decision == Decision.NG and "under 6 months" in soon.reason
    blank = tool.run(np.full((200, 400), 210, np.uint8), "L24X7B")
    assert blank.decision == Decision.NG and blank.reason == "no text found"


def test_a_match_only_through_runner_up_characters_is_review() -> None:
    from lineguard.decision import Decision
    from lineguard.tools.checks import OcrTool
    from lineguard.tools.config import OcrToolConfig
    from lineguard.tools.ocr import CharReading, TextLine, TextReading

    class Doubtful:
        """A reading whose 8 (confidence 0.6) has the runner-up B."""

        def read(self, image):  # type: ignore[no-untyped-def]
            chars = [CharReading(c, 0.99) for c in "L24X7"] + [CharReading("8", 0.6, (("B", 0.35),))]
            return TextReading((TextLine(tuple(chars), np.zeros((4, 2), np.float32)),))

    tool = OcrTool(OcrToolConfig(kind="ocr", expect="L24X7B", min_confidence=0.5))
    tool.reader = Doubtful()  # type: ignore[assignment]
    result = tool.run(np.zeros((50, 50), np.uint8))
    assert result.decision == Decision.REVIEW and "only as 'L24X7B'" in result.reason
    no_hope = OcrTool(OcrToolConfig(kind="ocr", expect="L24X7C", min_confidence=0.5))
    no_hope.reader = Doubtful()  # type: ignore[assignment]
    assert no_hope.run(np.zeros((50, 50), np.uint8)).decision == Decision.NG


def _solid_line(text: str) -> np.ndarray:
    image = np.full((90, 620), 235, np.uint8)
    cv2.putText(image, text, (12, 60), cv2.FONT_HERSHEY_DUPLEX, 1.5, 25, 3, cv2.LINE_AA)
    return image


def test_the_tesseract_fallback_reads_with_per_character_confidence() -> None:
    from lineguard.tools.ocr import tesseract_path

    if tesseract_path() is None:
        pytest.skip("Debian's tesseract-ocr is not installed (scripts/setup.sh installs it as root)")
    reader = TextReader(print="solid", engine="tesseract")
    for text in ("LOT 4711 EXP 2028", "PN 88-1042-A"):
        reading = reader.read(_solid_line(text))
        assert reading.text == text
        assert all(0 < c.confidence <= 1 for c in reading.chars) and reading.confidence > 0.9
        (line,) = reading.lines
        assert line.box[:, 0].min() >= 0 and line.box[:, 0].max() <= 620 and line.box[:, 1].max() <= 90
    digits = TextReader(print="solid", engine="tesseract", charset="0123456789 ").read(
        _solid_line("LOT 4711")
    )
    assert set(digits.text) <= set("0123456789 ")  # the whitelist holds
    from lineguard.tools.checks import OcrTool
    from lineguard.tools.config import OcrToolConfig

    config = OcrToolConfig(kind="ocr", engine="tesseract", print="solid", expect="LOT {part_id}")
    tool = OcrTool(config)
    assert tool.run(_solid_line("LOT K31M8P"), "K31M8P").decision.value == "OK"
    assert tool.run(_solid_line("LOT K31M8P"), "K31M8Q").decision.value == "NG"


def test_an_engine_that_is_not_installed_is_a_start_up_error(monkeypatch) -> None:
    from lineguard.tools import ocr

    monkeypatch.setattr(ocr, "tesseract_path", lambda: None)
    with pytest.raises(ocr.OcrUnavailable, match="apt install tesseract-ocr"):
        TextReader(engine="tesseract")
    monkeypatch.setattr(ocr, "_rapidocr_installed", lambda: False)
    monkeypatch.setattr(ocr, "tesseract_path", lambda: "/usr/bin/tesseract")
    assert TextReader(engine="auto").engine == "tesseract"  # auto falls back without RapidOCR
