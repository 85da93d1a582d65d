"""Image sources: line-scan assembly, pixel formats, watched folders, replay pacing, video, GenICam."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_line

from lineguard.preprocess.align import Aligner, AlignmentError
from lineguard.station.config import (
    FolderSourceConfig,
    GenICamSourceConfig,
    ReplaySourceConfig,
    VideoSourceConfig,
)
from lineguard.station.linescan import LineScanAssembler
from lineguard.station.sources import (
    FolderSource,
    GenICamSource,
    ReplaySource,
    VideoSource,
    genicam_to_image,
)


def collect(source, n: int | None = None, timeout_s: float = 20.0):
    stop = threading.Event()
    frames = []
    end = time.monotonic() + timeout_s
    for frame in source.frames(stop):
        frames.append(frame)
        if (n is not None and len(frames) >= n) or time.monotonic() > end:
            stop.set()
            break
    return frames


def test_line_scan_by_line_count_keeps_every_line_in_order():
    asm = LineScanAssembler(lines_per_frame=10)
    lines = np.arange(35 * 4, dtype=np.uint8).reshape(35, 4)
    frames = asm.push(lines[:7]) + asm.push(lines[7:23]) + asm.push(lines[23:])
    assert len(frames) == 3 and asm.buffered_lines == 5
    np.testing.assert_array_equal(np.concatenate(frames), lines[:30])
    with pytest.raises(ValueError, match="earlier lines"):
        asm.push(np.zeros((2, 5), np.uint8))


def _belt(positions: np.ndarray) -> np.ndarray:
    """Line-scan lines of a surface that is a function of position along the belt (16 px wide)."""
    return ((128 + 100 * np.sin(positions / 7.0))[:, None] * np.ones((1, 16))).astype(np.float32)


def _assert_same_part(steady: list[np.ndarray], varying: list[np.ndarray]) -> None:
    assert len(steady) >= 2 and len(varying) >= 2 and steady[0].shape == (50, 16)
    for a, b in zip(steady[:2], varying[:2], strict=True):
        assert np.abs(a - b).max() < 5.0  # of a 200-level swing: linear interpolation between lines


def test_line_scan_by_encoder_gives_the_same_image_at_any_conveyor_speed():
    """The surface is a function of position along the belt; a slow and a varying-speed run must
    reconstruct it identically (to interpolation error), which a fixed line count cannot."""

    def scan(ticks_per_line):
        positions = np.concatenate([[0.0], np.cumsum(ticks_per_line)])  # the part starts at tick 0
        asm = LineScanAssembler(lines_per_frame=50, ticks_per_frame=400)
        frames = []
        for start in range(0, len(positions), 37):  # strips of 37 lines, as a frame grabber delivers
            chunk = positions[start : start + 37]
            frames += asm.push(_belt(chunk), chunk)
        return frames

    rng = np.random.default_rng(0)
    _assert_same_part(scan(np.full(1000, 2.0)), scan(rng.uniform(0.5, 4.0, 2000)))
    with pytest.raises(ValueError, match="backwards"):
        LineScanAssembler(10, 100).push(np.zeros((3, 4)), np.array([5, 4, 6]))


def test_line_scan_encoder_mode_from_one_encoder_count_per_strip():
    # Found: GenICamSource pushed strips without encoder positions, the assembler raised and the
    # free-running source swallowed it: encoder mode never gave a frame. A camera gives one encoder
    # count per strip (chunk data); lines are spread between one strip's count and the next's.
    from lineguard.station.linescan import EncoderStrips

    def scan(ticks_per_line_of_strip):
        strips = EncoderStrips(LineScanAssembler(lines_per_frame=50, ticks_per_frame=400))
        frames, position = [], 0.0
        for ticks in ticks_per_line_of_strip:  # the belt's speed changes between strips
            lines = position + ticks * np.arange(37)
            frames += strips.push(_belt(lines), position)
            position += 37 * ticks
        return frames

    rng = np.random.default_rng(1)
    _assert_same_part(scan(np.full(30, 2.0)), scan(rng.uniform(0.5, 4.0, 60)))
    with pytest.raises(ValueError, match="no encoder value"):
        EncoderStrips(LineScanAssembler(10, 100)).push(np.zeros((3, 4)), None)


def test_genicam_pixel_formats():
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8)
    out = genicam_to_image(rgba, 3, 2, "RGBa8")
    assert out.shape == (2, 3, 3) and out[0, 0].tolist() == [0, 1, 2]
    bgr = genicam_to_image(np.array([1, 2, 3] * 6, np.uint8), 3, 2, "BGR8")
    assert bgr[0, 0].tolist() == [3, 2, 1]
    mono16 = genicam_to_image(np.array([0, 1, 0, 2], np.uint8), 2, 1, "Mono16")
    assert mono16.dtype == np.uint16 and mono16.tolist() == [[256, 512]]
    assert genicam_to_image(np.zeros(16, np.uint8), 4, 4, "BayerRG8").shape == (4, 4, 3)
    with pytest.raises(ValueError, match="YUV422_8"):
        genicam_to_image(np.zeros(8, np.uint8), 2, 2, "YUV422_8")


def test_watched_folder_takes_new_files_only_once_they_are_complete(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_line(folder, 2, defect_every=0)
    source = FolderSource(
        "cam", FolderSourceConfig(kind="folder", path=folder, watch=True, poll_s=0.05, settle_s=0.3)
    )
    stop = threading.Event()
    frames = []
    thread = threading.Thread(target=lambda: frames.extend(source.frames(stop)))
    thread.start()
    try:
        time.sleep(0.5)
        assert [f.part_id for f in frames] == ["p000", "p001"]
        data = (folder / "p000.png").read_bytes()
        with (folder / "late.png").open("wb") as fh:  # a camera writing slowly
            fh.write(data[:100])
            fh.flush()
            time.sleep(0.4)
            assert len(frames) == 2  # half-written: not taken yet
            fh.write(data[100:])
        time.sleep(0.8)
        assert [f.part_id for f in frames] == ["p000", "p001", "late"] and frames[2].data == data
    finally:
        stop.set()
        thread.join(5)


def test_replay_keeps_its_rate_and_loops(tmp_path):
    write_line(tmp_path / "line", 3, defect_every=0)
    source = ReplaySource(
        "cam", ReplaySourceConfig(kind="replay", path=tmp_path / "line", ppm=600, loop=True, limit=7)
    )
    start = time.monotonic()
    frames = collect(source)
    assert [f.part_id for f in frames] == ["p000", "p001", "p002"] * 2 + ["p000"]
    assert time.monotonic() - start >= 0.6 - 0.05  # 7 parts at 600/min: the 7th is due at 0.6 s
    assert [f.seq for f in frames] == list(range(7))
    with pytest.raises(FileNotFoundError, match="no images"):
        ReplaySource("cam", ReplaySourceConfig(kind="replay", path=tmp_path, pattern="*.none"))


def test_video_file_frames_in_rgb(tmp_path):
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, :, 2] = 200  # red in BGR
        frame[:4, : 6 * (i + 1)] = 255
        writer.write(frame)
    writer.release()
    source = VideoSource("cam", VideoSourceConfig(kind="video", url=str(path), every_n=2))
    frames = collect(source)
    assert len(frames) == 5 and frames[0].image.shape == (48, 64, 3)
    assert frames[0].image[30, 30, 0] > 150 and frames[0].image[30, 30, 2] < 60  # red lands in channel 0
    assert frames[1].name.endswith("frame 2")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoSource("cam", VideoSourceConfig(kind="video", url=str(tmp_path / "missing.avi")))


def _simulated_producer() -> Path:
    genicam = pytest.importorskip("genicam")
    pytest.importorskip("harvesters")
    found = sorted(Path(genicam.__file__).parent.glob("*.cti"))
    if not found:
        pytest.skip("the genicam wheel ships no simulated GenTL producer on this platform")
    return found[0]


def test_genicam_camera_through_harvesters_simulated_producer():
    cti = _simulated_producer()
    source = GenICamSource("cam", GenICamSourceConfig(kind="genicam", cti=cti, serial="1", limit=3))
    try:
        frames = collect(source)
    finally:
        source.close()
    assert len(frames) == 3 and not any(f.error for f in frames)
    assert frames[0].image.shape == (400, 400, 3) and frames[0].image.dtype == np.uint8
    assert "1" in frames[0].name
    with pytest.raises(OSError, match="no camera with serial 'nope'"):
        GenICamSource("cam", GenICamSourceConfig(kind="genicam", cti=cti, serial="nope"))


def test_genicam_encoder_mode_is_refused_on_a_camera_without_encoder_chunk_data():
    from lineguard.station.config import LineScanConfig

    cti = _simulated_producer()
    config = GenICamSourceConfig(
        kind="genicam", cti=cti, serial="1", line_scan=LineScanConfig(lines_per_frame=64, ticks_per_frame=800)
    )
    with pytest.raises(OSError, match="ChunkEncoderValue"):
        GenICamSource("cam", config)


def test_genicam_triggered_takes_a_frame_per_trigger():
    cti = _simulated_producer()
    source = GenICamSource("cam", GenICamSourceConfig(kind="genicam", cti=cti, trigger="software", limit=2))
    stop = threading.Event()
    frames = []
    thread = threading.Thread(target=lambda: frames.extend(source.frames(stop)))
    thread.start()
    try:
        time.sleep(0.5)
        assert frames == []
        source.gate.fire("PN-1")
        source.gate.fire("PN-2")
        thread.join(10)
        assert [f.part_id for f in frames] == ["PN-1", "PN-2"]
    finally:
        stop.set()
        thread.join(5)
        source.close()


def test_alignment_undoes_a_shift_and_refuses_a_blank_image():
    rng = np.random.default_rng(0)
    reference = cv2.GaussianBlur((rng.random((120, 160)) * 255).astype(np.uint8), (5, 5), 0)
    shifted = cv2.warpAffine(
        reference, np.float32([[1, 0, 6], [0, 1, -3]]), (160, 120), borderMode=cv2.BORDER_REPLICATE
    )
    aligned = Aligner(reference).align(shifted)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(aligned[inner].astype(int) - reference[inner]).mean() < 1.0
    assert np.abs(shifted[inner].astype(int) - reference[inner]).mean() > 20
    with pytest.raises(AlignmentError):
        Aligner(reference).align(np.zeros_like(reference))


def test_a_relative_video_file_is_relative_to_the_station_file(tmp_path):
    from lineguard.station import parse_config

    doc = {
        "station": "s",
        "sources": {
            "v": {"kind": "video", "url": "clips/line.avi"},
            "r": {"kind": "video", "url": "rtsp://10.0.0.5/stream"},
            "u": {"kind": "video", "url": "0"},
        },
        "recipes": {"r": {"checks": [{"name": "a", "bundle": "b", "source": "v"}]}},
        "recipe": "r",
    }
    config = parse_config(doc, base=tmp_path)
    assert config.sources["v"].url == str(tmp_path / "clips" / "line.avi")
    assert config.sources["r"].url == "rtsp://10.0.0.5/stream" and config.sources["u"].url == "0"


def test_triggered_video_takes_one_frame_per_trigger(tmp_path):
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for _ in range(6):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    source = VideoSource("cam", VideoSourceConfig(kind="video", url=str(path), every_n=3, trigger="software"))
    for part in ("A", "B", "C"):
        source.gate.fire(part)
    stop = threading.Event()
    frames = []
    for frame in source.frames(stop):
        frames.append(frame)
        if len(frames) == 3:
            stop.set()
            break
    assert [f.part_id for f in frames] == ["A", "B", "C"]
    assert [f.name.rsplit(" ", 1)[1] for f in frames] == ["0", "1", "2"]  # every_n is for free-run only
