"""Where part images come from: folders (once or watched), a replayed line, video/RTSP/USB, GenICam.

Every source yields :class:`Frame` objects from its own thread. A triggered frame
carries its trigger's number: the station opens the part when the trigger fires, and the
frames of every camera it fired meet in that part (one lost frame fails one part, never
shifts the pairing of later ones). Free-running sources pair by count: the k-th frame of
every source belongs to the k-th part. A source that cannot read an image
still yields a frame, carrying the error, so the part is decided fail-safe instead
of silently missing from the count.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from lineguard.data.image_io import IMAGE_SUFFIXES, read_file_bytes
from lineguard.errors import DataError
from lineguard.station.config import (
    FolderSourceConfig,
    GenICamSourceConfig,
    ReplaySourceConfig,
    SourceConfig,
    VideoSourceConfig,
)
from lineguard.station.linescan import EncoderStrips, LineScanAssembler
from lineguard.store.journal import append_json_lines, replace_lines


@dataclass
class Frame:
    source: str
    seq: int  # 0, 1, 2... per source
    part_id: str | None  # from the trigger, the file name or the PLC; None: the station numbers it
    name: str  # what error messages call it: a file path, "camera 0 frame 17"...
    image: np.ndarray | None = None  # decoded pixels (cameras, video)
    data: bytes | None = None  # encoded bytes (files), decoded by the inspection worker
    error: str = ""  # the source could not read it: the part's checks on it fail
    trigger: int | None = None  # the station's trigger number this frame answers (triggered sources)
    on_recorded: Callable[[], None] | None = None  # called once the part holding it is recorded
    acquired: float = field(default_factory=time.monotonic)


class TriggerGate:
    """Software/external triggers for one source: each trigger releases one acquisition."""

    def __init__(self) -> None:
        self._tokens: queue.Queue[tuple[str | None, int | None]] = queue.Queue()

    def fire(self, part_id: str | None = None, number: int | None = None) -> None:
        """One acquisition; ``number`` is the station's trigger count, which its frame carries."""
        self._tokens.put((part_id, number))

    def wait(
        self, stop: threading.Event, poll_s: float = 0.05
    ) -> tuple[bool, tuple[str | None, int | None] | None]:
        """(True, (part_id, number)) once triggered; (False, None) when the station stops first."""
        while not stop.is_set():
            try:
                return True, self._tokens.get(timeout=poll_s)
            except queue.Empty:
                continue
        return False, None


class Source:
    """Base: ``frames(stop)`` yields until exhausted or stopped; ``finite`` sources end by themselves.

    ``backpressure``: the source can wait for the station (files on disk); a camera or a
    line running at its own rate cannot, so when the inspection queue is full its parts fail
    as overload instead.
    """

    finite = True
    backpressure = False

    def __init__(self, name: str, trigger: str = "free_run") -> None:
        self.name = name
        self.trigger_mode = trigger
        self.gate = TriggerGate() if trigger != "free_run" else None
        self._seq = 0
        self.trigger_number: int | None = None  # of the trigger being served (source thread only)

    @property
    def frames_taken(self) -> int:
        """Images (or failed reads) this source has given the station."""
        return self._seq

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, self._seq + 1
        return seq

    def _await_trigger(self, stop: threading.Event) -> tuple[bool, str | None]:
        if self.gate is None:
            return not stop.is_set(), None
        ok, token = self.gate.wait(stop)
        part_id, self.trigger_number = token if token is not None else (None, None)
        return ok, part_id

    def _frame(self, seq: int, part_id: str | None, name: str, **content) -> Frame:
        return Frame(self.name, seq, part_id, name, trigger=self.trigger_number, **content)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _matching_images(folder: Path, pattern: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: source folder does not exist")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and fnmatch.fnmatch(p.name, pattern)
    )


def _file_frame(source: Source, path: Path, part_id: str | None) -> Frame:
    seq = source._next_seq()
    try:
        return source._frame(seq, part_id or path.stem, str(path), data=read_file_bytes(path))
    except DataError as exc:
        return source._frame(seq, part_id or path.stem, str(path), error=exc.problem)


class FolderSource(Source):
    """Existing images in name order; with ``watch``, then every new file once it has settled.

    A watched folder behaves like a line: it remembers, in the state folder, which files it had
    decided (name, size, time and content hash, written once the part is recorded), so a restart
    does not report old parts again; a file rewritten under the same name (a camera that always
    writes ``image.jpg``) is a new part. ``after`` moves or deletes a file once recorded.
    """

    def __init__(self, name: str, config: FolderSourceConfig, state_dir: Path | None = None) -> None:
        super().__init__(name, config.trigger)
        self.config = config
        self.finite = not config.watch
        self.backpressure = True
        remember = config.watch and config.after == "keep"
        self.decided = (
            DecidedFiles(state_dir / "sources" / f"{name}.decided.jsonl")
            if remember and state_dir is not None
            else None
        )
        if config.move_to is not None:
            config.move_to.mkdir(parents=True, exist_ok=True)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        taken: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) when taken in this run
        sizes: dict[str, tuple[int, float]] = {}
        while not stop.is_set():
            ready = []
            for path in _matching_images(self.config.path, self.config.pattern):
                try:
                    info = path.stat()
                except OSError:
                    continue
                if taken.get(path.name) == (info.st_size, info.st_mtime_ns):
                    continue
                if self.config.watch and not self._settled(path, sizes):
                    continue
                if self.decided is not None and self.decided.holds(path, info):
                    taken[path.name] = (info.st_size, info.st_mtime_ns)
                    continue
                ready.append((path, info))
            for path, info in ready:
                ok, part_id = self._await_trigger(stop)
                if not ok:
                    return
                taken[path.name] = (info.st_size, info.st_mtime_ns)
                sizes.pop(path.name, None)
                frame = _file_frame(self, path, part_id)
                frame.on_recorded = self._when_recorded(path, info, frame.data)
                yield frame
            if not self.config.watch:
                return
            stop.wait(self.config.poll_s)

    def _when_recorded(self, path: Path, info: os.stat_result, data: bytes | None) -> Callable[[], None]:
        # Hashed only where it is remembered: the source thread is on the line's path.
        digest = hashlib.sha256(data).hexdigest() if data is not None and self.decided is not None else ""

        def done() -> None:
            if self.decided is not None:
                self.decided.add(path.name, info.st_size, info.st_mtime_ns, digest)
            if self.config.after == "delete":
                path.unlink(missing_ok=True)
            elif self.config.after == "move" and self.config.move_to is not None:
                shutil.move(path, self.config.move_to / path.name)

        return done

    def _settled(self, path: Path, sizes: dict[str, tuple[int, float]]) -> bool:
        """A file still being written (camera software, network copy) is read only once its size holds."""
        try:
            size = path.stat().st_size
        except OSError:
            return False
        now = time.monotonic()
        last = sizes.get(path.name)
        if last is None or last[0] != size:
            sizes[path.name] = (size, now)
            return self.config.settle_s == 0 and size > 0
        if size == 0 or now - last[1] < self.config.settle_s:
            return False
        # A writer that stalls longer than settle_s: a PNG/JPEG without its end marker gets more time
        # (then it is taken, and fails to decode, so the part is still decided fail-safe).
        return _looks_complete(path) or now - last[1] >= max(5.0, 10 * self.config.settle_s)


class DecidedFiles:
    """The files a watched folder has had decided, kept across restarts: one JSON line per file
    (name, size, mtime_ns, sha256), compacted to the latest line per name when opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, tuple[int, int, str]] = {}
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if not line.endswith("\n"):
                        break  # torn by a crash: that file was not yet marked, it is inspected again
                    try:
                        doc = json.loads(line)
                        self.entries[doc["name"]] = (
                            int(doc["size"]),
                            int(doc["mtime_ns"]),
                            str(doc["sha256"]),
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # a damaged line only means that file may be inspected again
        # Compacted: one line per name.
        replace_lines(
            path, [json.dumps(self._doc(name, *entry)) + "\n" for name, entry in self.entries.items()]
        )

    @staticmethod
    def _doc(name: str, size: int, mtime_ns: int, sha256: str) -> dict:
        return {"name": name, "size": size, "mtime_ns": mtime_ns, "sha256": sha256}

    def holds(self, path: Path, info: os.stat_result) -> bool:
        """Was this very file (same name and content) decided before?"""
        entry = self.entries.get(path.name)
        if entry is None:
            return False
        if entry[:2] == (info.st_size, info.st_mtime_ns):
            return True
        try:  # touched, or copied again: the content decides
            same = hashlib.sha256(read_file_bytes(path)).hexdigest() == entry[2]
        except DataError:
            return False
        if same:
            self.entries[path.name] = (info.st_size, info.st_mtime_ns, entry[2])
        return same

    def add(self, name: str, size: int, mtime_ns: int, sha256: str) -> None:
        self.entries[name] = (size, mtime_ns, sha256)
        append_json_lines(self.path, [self._doc(name, size, mtime_ns, sha256)])


def _looks_complete(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            fh.seek(max(0, path.stat().st_size - 1024))
            tail = fh.read()
    except OSError:
        return False
    if head[:3] == b"\xff\xd8\xff":
        return b"\xff\xd9" in tail
    if head == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in tail[-32:]
    return True


class ReplaySource(Source):
    """A folder fed at a fixed parts-per-minute rate: a simulated line, or a benchmark at full speed."""

    def __init__(self, name: str, config: ReplaySourceConfig) -> None:
        super().__init__(name, config.trigger)
        self.config = config
        self.finite = not config.loop or config.limit is not None
        self.backpressure = (
            config.ppm == 0
        )  # "as fast as taken"; at a set rate it is a line that does not wait
        self.paths = _matching_images(config.path, config.pattern)
        if not self.paths:
            raise FileNotFoundError(f"{config.path}: no images matching {config.pattern!r} to replay")

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        interval = 60.0 / self.config.ppm if self.config.ppm > 0 else 0.0
        start = time.monotonic()
        count = 0
        while not stop.is_set():
            for path in self.paths:
                if self.config.limit is not None and count >= self.config.limit:
                    return
                if interval:
                    delay = start + count * interval - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
                ok, part_id = self._await_trigger(stop)
                if not ok:
                    return
                count += 1
                yield _file_frame(self, path, part_id)
            if not self.config.loop:
                return


class VideoSource(Source):
    """OpenCV capture: a file plays once; a stream (RTSP/HTTP) or USB camera reconnects until stopped."""

    def __init__(self, name: str, config: VideoSourceConfig) -> None:
        super().__init__(name, config.trigger)
        self.config = config
        self.target: str | int = int(config.url) if config.url.isdigit() else config.url
        self.is_file = isinstance(self.target, str) and os.path.isfile(self.target)
        self.finite = self.is_file or config.limit is not None
        self.backpressure = self.is_file
        if isinstance(self.target, str) and "://" not in self.target and not self.is_file:
            raise FileNotFoundError(f"{config.url}: video file does not exist")

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        taken = read = 0
        while not stop.is_set():
            capture = cv2.VideoCapture(self.target)
            try:
                if not capture.isOpened():
                    if self.is_file:
                        raise OSError(f"{self.config.url}: OpenCV cannot open this video")
                    stop.wait(self.config.reconnect_s)
                    continue
                while not stop.is_set():
                    if self.config.limit is not None and taken >= self.config.limit:
                        return
                    ok, triggered_id = self._await_trigger(stop)
                    if not ok:
                        return
                    grabbed, bgr = capture.read()
                    if not grabbed:
                        break
                    read += 1
                    # every_n thins a free-running stream; triggered, the frame after each trigger counts.
                    if self.gate is None and (read - 1) % self.config.every_n:
                        continue
                    taken += 1
                    seq = self._next_seq()
                    image = bgr if bgr.ndim == 2 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    yield self._frame(seq, triggered_id, f"{self.config.url} frame {read - 1}", image=image)
            finally:
                capture.release()
            if self.is_file:
                return
            stop.wait(self.config.reconnect_s)


# GenICam pixel formats -> how to make HxW grey or HxWx3 RGB of them.
_BAYER = {
    "BayerRG8": cv2.COLOR_BayerRG2RGB,
    "BayerGR8": cv2.COLOR_BayerGR2RGB,
    "BayerBG8": cv2.COLOR_BayerBG2RGB,
    "BayerGB8": cv2.COLOR_BayerGB2RGB,
}


def genicam_to_image(data: np.ndarray, width: int, height: int, pixel_format: str) -> np.ndarray:
    """A GenTL buffer component as grey (HxW) or RGB (HxWx3), uint8 or uint16; copies the data
    (the buffer goes back to the camera's pool right after)."""
    flat = np.asarray(data)
    if pixel_format == "Mono8":
        return flat.reshape(height, width).copy()
    if pixel_format in ("Mono10", "Mono12", "Mono14", "Mono16"):
        return (
            flat.view(np.uint16).reshape(height, width).copy()
            if flat.dtype == np.uint8
            else (flat.astype(np.uint16).reshape(height, width).copy())
        )
    if pixel_format in ("RGB8", "RGB8Packed"):
        return flat.reshape(height, width, 3).copy()
    if pixel_format in ("BGR8", "BGR8Packed"):
        return cv2.cvtColor(flat.reshape(height, width, 3), cv2.COLOR_BGR2RGB)
    if pixel_format in ("RGBa8", "RGBA8"):
        return cv2.cvtColor(flat.reshape(height, width, 4), cv2.COLOR_RGBA2RGB)
    if pixel_format in ("BGRa8", "BGRA8"):
        return cv2.cvtColor(flat.reshape(height, width, 4), cv2.COLOR_BGRA2RGB)
    if pixel_format in _BAYER:
        return cv2.cvtColor(flat.reshape(height, width), _BAYER[pixel_format])
    raise ValueError(f"pixel format {pixel_format!r} is not supported; set the camera to Mono8/RGB8/Bayer*8")


def default_cti_files() -> list[str]:
    """GenTL producers named by GENICAM_GENTL64_PATH, the standard variable vendors set."""
    found = []
    for folder in os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if folder:
            found.extend(sorted(glob.glob(os.path.join(folder, "*.cti"))))
    return found


class GenICamSource(Source):
    """A GenICam camera (GigE Vision, USB3 Vision...) through harvesters and a GenTL producer.

    Software/external triggers use the camera's TriggerSoftware when it has one;
    otherwise the frame grabbed right after the trigger is taken (older buffers dropped).
    Line-scan cameras: strips are assembled into part images (``line_scan``).
    """

    finite = False

    def __init__(self, name: str, config: GenICamSourceConfig) -> None:
        super().__init__(name, config.trigger)
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise ImportError("GenICam cameras need harvesters: pip install 'lineguard[camera]'") from None
        self.config = config
        self.finite = config.limit is not None
        if not Path(config.cti).is_file():
            raise FileNotFoundError(f"{config.cti}: GenTL producer (.cti) not found")
        self.harvester = Harvester()
        self.harvester.add_file(str(config.cti))
        self.harvester.update()
        devices = self.harvester.device_info_list
        if config.serial is not None:
            matches = [i for i, d in enumerate(devices) if d.serial_number == config.serial]
            if not matches:
                serials = [d.serial_number for d in devices]
                self.harvester.reset()
                raise OSError(f"no camera with serial {config.serial!r}; found {serials}")
            index = matches[0]
        else:
            if config.index >= len(devices):
                self.harvester.reset()
                raise OSError(
                    f"camera index {config.index} but {len(devices)} camera(s) found via {config.cti}"
                )
            index = config.index
        self.device = f"{devices[index].model} {devices[index].serial_number}"
        self.acquirer = self.harvester.create(index)
        node_map = self.acquirer.remote_device.node_map
        for feature, value in config.features.items():
            try:
                getattr(node_map, feature).value = value
            except Exception as exc:
                self.close()
                raise OSError(f"camera {self.device}: cannot set {feature} = {value!r} ({exc})") from None
        self.software_trigger = None
        if self.gate is not None and node_map.has_node("TriggerSoftware"):
            node_map.TriggerMode.value = "On"
            node_map.TriggerSource.value = "Software"
            self.software_trigger = node_map.TriggerSoftware
        line_scan = config.line_scan
        self.strips = (
            EncoderStrips(LineScanAssembler(line_scan.lines_per_frame, line_scan.ticks_per_frame))
            if line_scan
            else None
        )
        self.encoder = None
        if line_scan is not None and line_scan.ticks_per_frame is not None:
            if not node_map.has_node("ChunkEncoderValue"):
                self.close()
                raise OSError(
                    f"camera {self.device}: line_scan.ticks_per_frame (encoder mode) needs each strip's "
                    "encoder count as GenICam chunk data (ChunkEncoderValue), which this camera does not "
                    "offer; leave ticks_per_frame out and trigger the camera's lines from the encoder"
                )
            node_map.ChunkModeActive.value = True
            if node_map.has_node("ChunkSelector"):
                node_map.ChunkSelector.value = "EncoderValue"
                node_map.ChunkEnable.value = True
            self.encoder = node_map.ChunkEncoderValue

    def _fetch(self) -> tuple[np.ndarray, float | None]:
        """The buffer's image, and its encoder count in encoder mode (chunk data of that buffer)."""
        with self.acquirer.fetch(timeout=self.config.timeout_s) as buffer:
            component = buffer.payload.components[0]
            image = genicam_to_image(
                component.data, component.width, component.height, str(component.data_format)
            )
            return image, (float(self.encoder.value) if self.encoder is not None else None)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        self.acquirer.start()
        taken = 0
        while not stop.is_set():
            if self.config.limit is not None and taken >= self.config.limit:
                return
            ok, part_id = self._await_trigger(stop)
            if not ok:
                return
            if self.gate is not None and self.software_trigger is None:
                self._drop_queued()
            elif self.software_trigger is not None:
                self.software_trigger.execute()
            try:
                image, encoder_value = self._fetch()
            except Exception as exc:  # a timeout or a broken buffer is that part's failure, not the station's
                if self.gate is None:
                    continue  # free-running: no image means no part passed, not a failed part
                taken += 1
                yield self._frame(
                    self._next_seq(), part_id, f"camera {self.device}", error=str(exc) or type(exc).__name__
                )
                continue
            # Assembly errors (strips of another width, the encoder running backwards) are not a
            # missed frame: they stop the source, so the station says so instead of going silent.
            images = self.strips.push(image, encoder_value) if self.strips is not None else [image]
            for image in images:
                taken += 1
                seq = self._next_seq()
                yield self._frame(seq, part_id, f"camera {self.device} frame {seq}", image=image)

    def _drop_queued(self) -> None:
        """Free-running camera, triggered station: older buffers show the part before this one."""
        while True:
            try:
                with self.acquirer.fetch(timeout=0.001):
                    pass
            except Exception:
                return

    def close(self) -> None:
        try:
            self.acquirer.stop()
            self.acquirer.destroy()
        finally:
            self.harvester.reset()


def open_source(name: str, config: SourceConfig, state_dir: Path | None = None) -> Source:
    """``state_dir``: where sources keep what must survive a restart (a watched folder's files)."""
    if isinstance(config, FolderSourceConfig):
        return FolderSource(name, config, state_dir)
    if isinstance(config, ReplaySourceConfig):
        return ReplaySource(name, config)
    if isinstance(config, VideoSourceConfig):
        return VideoSource(name, config)
    if isinstance(config, GenICamSourceConfig):
        return GenICamSource(name, config)
    raise TypeError(f"unknown source config {type(config).__name__}")
