"""The inspection station: parts in, one durable decision per part out, reported to the line.

Threads and queues::

    source threads ──frames──▶ bounded inspection queue ──▶ worker threads (checks)
                                  │ full: the check fails (overload)       │
                                  ▼                                         ▼
                           PartAssembler (all checks in, or deadline) ──▶ decide thread
                                                                          record (durable) ──▶ sinks

Fail-safe rules: a part is OK only when every check of the recipe reported OK with
a valid score before the deadline. Overload, decode errors, model errors and
deadline misses give the recipe's fail-safe verdict with the reason recorded. A
verdict is reported to the sinks only after the record holds it (database or
fsynced journal); if even the journal cannot take it, the station stops deciding
and says so rather than report what it cannot prove.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
import time
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import numpy as np

from lineguard.decision import (
    AssembledPart,
    CheckOutcome,
    Decision,
    PartAssembler,
    VerdictPolicy,
)
from lineguard.errors import JobRefused, TriggerRefused
from lineguard.results import ErrorCode, PublishedResult
from lineguard.sinks.basic import Sink
from lineguard.station.checks import CheckRun, CheckRunner
from lineguard.station.config import ConfigError, RecipeConfig, StationConfig
from lineguard.station.drift import DriftWatch, describe, standing_alarms
from lineguard.station.inspection import Inspection
from lineguard.station.parts import PartInFlight, PartsInFlight
from lineguard.station.recording import PartRecorder
from lineguard.station.sources import Frame, Source, open_source
from lineguard.station.status import StationState, StationStatus
from lineguard.store import ImageArchive, PartRecord, RecordStore, sqlite_url
from lineguard.store.audit import record_change
from lineguard.store.records import MAX_PART_ID_CHARS, admit_part_id, storable_text
from lineguard.store.reviews import ReviewSampling

log = logging.getLogger("lineguard.station")

GROUP_COMMIT_MAX = 256  # parts recorded in one transaction at most
STOP_RECORD_TIMEOUT_S = 300.0  # how long stop() waits for the record to take every decided part


class _Recipe:
    """A loaded recipe: its check runners (bundles open) and its part assembler."""

    def __init__(self, name: str, config: RecipeConfig, station: StationConfig) -> None:
        self.name = name
        self.config = config
        threads = station.threads_per_worker
        try:
            self.runners = [
                CheckRunner(c, station.providers, threads, drift=station.drift.enabled) for c in config.checks
            ]
        except ConfigError as exc:
            raise ConfigError(f"recipes.{name}: {exc}") from None
        self.drift = DriftWatch(name, station.drift, {r.name: r.drift_reference for r in self.runners})
        self.by_source: dict[str, list[CheckRunner]] = {}
        # Cascades: pre-screen check -> the detailed checks that run only when it flags the part.
        self.dependents: dict[str, list[CheckRunner]] = {}
        for runner in self.runners:
            self.by_source.setdefault(runner.config.source, []).append(runner)
            if runner.config.after:
                self.dependents.setdefault(runner.config.after, []).append(runner)
        policy = VerdictPolicy(missing=Decision(config.on_missing), failed=Decision(config.on_failed))
        self.assembler = PartAssembler(
            [r.name for r in self.runners], station.deadline_ms / 1e3, policy, remember_closed=10_000
        )


class Station:
    def __init__(self, config: StationConfig, sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.name = config.station
        state = Path(config.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        store_config = config.store
        # Which parts the review queue holds: the record draws them, the archive keeps their images.
        sampling = ReviewSampling(config.review.ok_every, config.review.ng_every)
        self.store = RecordStore(
            store_config.url or sqlite_url(state / "record.db"),
            store_config.journal or state / "journal.jsonl",
            review_sampling=sampling,
        )
        self.archive = ImageArchive(store_config.archive or state / "images")
        self.recorder = PartRecorder(self.name, self.archive, store_config, sampling)
        # Unique per run: the record is idempotent per uid, so a restarted station must never reuse one.
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self._lock = threading.RLock()
        self._recipes_loaded: dict[str, _Recipe] = {}
        self.recipe = self._load_recipe(config.recipe)
        self.sources: dict[str, Source] = {}
        self.sinks: list[Sink] = list(sinks or [])
        self.inspection = Inspection(
            config.queue_size, config.deadline_ms / 1e3, self._is_open, self._add, self._count
        )
        self._closed: queue.Queue[AssembledPart] = queue.Queue()
        self._parts = PartsInFlight()  # every part from its opening to its record
        self._triggers = 0
        self._stop = threading.Event()  # sources stop taking images
        self._halt = threading.Event()  # workers stop
        self._halt_decide = threading.Event()  # the decide thread stops, once every decided part is recorded
        self._decider: threading.Thread | None = None
        self._refusing = False  # the record backlog is full: parts refused at the source
        self._accepting = threading.Event()
        self._accepting.set()
        self._threads: list[threading.Thread] = []
        self._sources_done: set[str] = set()
        self.state: StationState = "created"
        self.held_reason = ""
        self.error = ""
        self.error_code = ErrorCode.NONE
        self.started_at: datetime | None = None
        self.counters = {
            "parts": 0,
            "OK": 0,
            "REVIEW": 0,
            "NG": 0,
            "overload": 0,
            "stale_skipped": 0,
            "late_frames": 0,
            "refused_backlog": 0,
            "triggers_refused": 0,
            "part_ids_refused": 0,
            "journalled": 0,
            "quarantined": 0,
            "reported": 0,
            "cascade_run": 0,
            "cascade_skipped": 0,
            "held_frames": 0,  # free-running images not taken as parts while the station was held
            "drift_errors": 0,  # drift monitoring that failed on a part (the part is decided regardless)
        }
        self._latencies: deque[float] = deque(maxlen=5000)
        self._decided_times: deque[float] = deque(maxlen=5000)  # the rate over the last minute
        self.last_result: PublishedResult | None = None

    # -- recipes -----------------------------------------------------------------------

    def _load_recipe(self, name: str) -> _Recipe:
        if name not in self.config.recipes:
            raise KeyError(f"no recipe {name!r}; recipes: {sorted(self.config.recipes)}")
        if name not in self._recipes_loaded:
            self._recipes_loaded[name] = _Recipe(name, self.config.recipes[name], self.config)
        return self._recipes_loaded[name]

    @property
    def recipe_names(self) -> list[str]:
        return sorted(self.config.recipes)

    def audit(
        self, actor: str, action: str, target: str, before: object = None, after: object = None
    ) -> None:
        """A change someone made, into the chained audit trail (its head kept in the state folder)."""
        record_change(self.store, self.config.state_dir, self.name, actor, action, target, before, after)

    def changeover(self, name: str, timeout_s: float | None = None) -> None:
        """Switch recipes between parts: load the new bundles first (a bad one leaves the old recipe
        running), hold new images, let the parts in flight finish, then switch."""
        new = self._load_recipe(name)
        timeout_s = timeout_s if timeout_s is not None else self.config.deadline_ms / 1e3 + 5.0
        self._accepting.clear()
        try:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end and (self.recipe.assembler.pending or not self.inspection.idle):
                time.sleep(0.01)
            with self._lock:
                old, self.recipe = self.recipe.name, new
        finally:
            self._accepting.set()
        self.store.add_event(self.name, "changeover", f"{old} -> {name}")

    @property
    def job(self) -> int:
        """The active recipe's job number (what a PLC selects it by); 0 when it has none."""
        return self.config.recipes[self.recipe.name].job or 0

    def change_job(self, number: int, actor: str) -> None:
        """A job change from a PLC: the changeover to the recipe with that job number, audited;
        JobRefused (with the error code the PLC sees) for an unknown number or a failed load."""
        name = next((n for n, r in self.config.recipes.items() if r.job == number), None)
        if name is None:
            known = sorted(r.job for r in self.config.recipes.values() if r.job is not None)
            why = f"{actor}: no recipe has job {number} (jobs: {known})"
            self.store.add_event(self.name, "job_refused", why)
            raise JobRefused(why, ErrorCode.JOB_UNKNOWN)
        before = self.recipe.name
        try:
            self.changeover(name)
        except Exception as exc:
            why = f"{actor}: job {number} (recipe {name}) failed, {before!r} kept: {exc}"
            self.store.add_event(self.name, "job_refused", why)
            raise JobRefused(why, ErrorCode.JOB_REFUSED) from None
        self.audit(actor, "changeover", f"recipe {name}", {"recipe": before}, {"recipe": name, "job": number})

    def hold(self, why: str) -> None:
        """Refuse new parts (triggers and free-running images) until ``release``; the parts in
        flight are decided and recorded as always. The line sees Ready off and PLC_LINK_LOST."""
        with self._lock:
            if self.state != "running":
                return
            self.state, self.held_reason, self.error_code = "held", why, ErrorCode.PLC_LINK_LOST
        self.store.add_event(self.name, "held", why)
        self._notify_state()

    def release(self, why: str) -> None:
        with self._lock:
            if self.state != "held":
                return
            self.state, self.held_reason = "running", ""
            if self.error_code == ErrorCode.PLC_LINK_LOST:
                self.error_code = ErrorCode.NONE
        self.store.add_event(self.name, "released", why)
        self._notify_state()

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        if self.config.store.require_database_at_start:
            self.store.verify()
        # Every source some recipe reads: a changeover may switch to checks on another camera.
        used = {check.source for recipe in self.config.recipes.values() for check in recipe.checks}
        for name, source_config in self.config.sources.items():
            if name in used:
                self.sources[name] = open_source(name, source_config, Path(self.config.state_dir))
        for sink in self.sinks:
            sink.start(self)
        replayed = self.store.replay_journal()
        self.store.add_event(
            self.name,
            "start",
            f"run {self.run_id}, recipe {self.recipe.name}"
            + (f", {replayed} journalled parts replayed" if replayed else ""),
        )
        self.started_at = datetime.now(UTC)
        self.state = "running"
        self._notify_state()
        for i in range(self.config.workers):
            self._spawn(self.inspection.work, f"inspect-{i}", self._halt)
        self._decider = self._spawn(self._decide, "decide")
        for source in self.sources.values():
            self._spawn(self._acquire, f"source-{source.name}", source)

    def _spawn(self, target, name: str, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    @property
    def finished(self) -> bool:
        """Every finite source has ended and every part it gave has been decided."""
        if not self.sources or any(not s.finite for s in self.sources.values()):
            return False
        return (
            self._sources_done >= set(self.sources)
            and self.inspection.idle
            and self.recipe.assembler.pending == 0
            and self._closed.empty()
            and not self._parts
        )

    def stop(self, drain_s: float | None = None) -> None:
        """Stop taking images, decide the parts in flight (their deadline bounds the wait), shut down."""
        if self.state in ("stopped", "created"):
            return
        self._stop.set()
        drain_s = drain_s if drain_s is not None else self.config.deadline_ms / 1e3 + 2.0
        end = time.monotonic() + drain_s
        while time.monotonic() < end and (
            self.recipe.assembler.pending or not self._closed.empty() or not self.inspection.idle
        ):
            time.sleep(0.01)
        self._halt.set()  # sources and workers stop
        for thread in self._threads:
            if thread is not self._decider:
                thread.join(timeout=5.0)
        with self._lock:  # images taken but not decided in time: fail-safe parts, never dropped
            for recipe in self._recipes_in_flight():
                for part in recipe.assembler.close_all():
                    self._closed.put(part)
        self._halt_decide.set()
        if self._decider is not None:
            self._decider.join(timeout=STOP_RECORD_TIMEOUT_S)
            if self._decider.is_alive():
                log.critical(
                    "stopping: %d decided parts still not recorded after %.0f s",
                    self._closed.qsize(),
                    STOP_RECORD_TIMEOUT_S,
                )
        for source in self.sources.values():
            try:
                source.close()
            except Exception as exc:
                log.warning("closing source %s: %s", source.name, exc)
        if self.state != "error":
            self.state = "stopped"
            self.error_code = ErrorCode.STOPPED if self.error_code == ErrorCode.NONE else self.error_code
        self._notify_state()
        self.store.replay_journal()  # the database may be back: leave as little as possible in the journal
        taken = ", ".join(f"{name} {source.frames_taken}" for name, source in self.sources.items())
        c = self.counters
        self.store.add_event(
            self.name,
            "stop",
            f"run {self.run_id}: {c['parts']} parts decided, {c['refused_backlog']} refused at the source, "
            f"{c['late_frames']} late frames; images taken: {taken}",
        )
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.warning("closing sink %s: %s", type(sink).__name__, exc)
        self.store.close()

    def trigger(self, part_id: str | None = None, source: str | None = None) -> int:
        """A software/external trigger: one part, opened now for the active recipe, made of one
        acquisition of every triggered source that recipe reads. Returns how many sources fired;
        raises TriggerRefused (and records the event) when the trigger cannot give exactly one part:
        a part ID over the limit, or no triggered source of the active recipe (``source``, if named,
        must be its only one)."""
        if self.state == "held":
            self._refuse_trigger(f"station held: {self.held_reason}", "held")
        try:
            part_id = admit_part_id(part_id)
        except ValueError as exc:
            self._refuse_trigger(f"part ID refused: {exc}", "part_id")
        if self._backlog_full():
            self._refuse_trigger(
                f"{self.config.record_backlog} decided parts wait to be recorded (record backlog full)",
                "backlog",
            )
        # A trigger during a changeover is served by the new recipe.
        self._accepting.wait(self.config.deadline_ms / 1e3 + 5.0)
        with self._lock:
            recipe = self.recipe
            fired = self._triggered_sources(recipe)
            refusal = None
            if not fired:
                refusal = f"recipe {recipe.name!r} reads no source that takes triggers"
            elif source is not None and fired != [source]:
                refusal = (
                    f"recipe {recipe.name!r} takes each part from the triggered source(s) {fired}: "
                    f"a trigger fires them all (name no source, or the recipe's only one)"
                )
            else:
                number, self._triggers = self._triggers, self._triggers + 1
                uid = f"{self.run_id}-t{number:07d}"
                recipe.assembler.open(uid, part_id)
                self._parts.open(PartInFlight(uid, recipe, time.monotonic(), trigger=number))
        if refusal is not None:  # outside the lock: recording the event may wait on the database
            self._refuse_trigger(refusal, "source")
        for name in fired:
            gate = self.sources[name].gate
            assert gate is not None  # only triggered sources fire
            gate.fire(part_id, number)
        return len(fired)

    def _refuse_trigger(self, why: str, kind: str) -> NoReturn:
        with self._lock:
            self.counters["triggers_refused"] += 1
        self.store.add_event(self.name, "trigger_refused", why)
        raise TriggerRefused(why, kind)

    # -- acquisition -------------------------------------------------------------------

    def _acquire(self, source: Source) -> None:
        try:
            for frame in source.frames(self._stop):
                self._accepting.wait()
                self._accept(frame, source.backpressure)
        except Exception as exc:
            detail = f"source {source.name} failed: {type(exc).__name__}: {exc}"
            log.error(detail)
            self.store.add_event(self.name, "source_error", detail)
            self.error, self.error_code = detail, ErrorCode.SOURCE_FAILED
            self._notify_state()
        finally:
            self._sources_done.add(source.name)

    def _accept(self, frame: Frame, backpressure: bool = False) -> None:
        if frame.trigger is None and not self._record_has_room(backpressure):
            return
        frame = self._admit_name(frame)
        with self._lock:
            recipe = self.recipe
            if frame.trigger is None and not recipe.by_source.get(frame.source):
                return  # a camera the active recipe does not read
            if frame.trigger is not None or self._triggered_sources(recipe):
                slot = self._parts.waiting_for(frame, recipe)
                if slot is None:  # its part was decided without it, a second image, or no part waits
                    self.counters["late_frames"] += 1
                    return
                part = slot
                part.sources_taken.add(frame.source)
                uid, recipe = part.uid, part.recipe
                if frame.part_id:
                    recipe.assembler.name(uid, frame.part_id)
            else:  # free-running parts: paired by (recipe, frame count)
                key = (recipe.name, frame.seq)
                found = self._parts.by_frame_count(key)
                if found is None and self.state == "held":
                    self.counters["held_frames"] += 1  # no new part while held
                    return
                if found is None:
                    if self._parts.recently_closed(frame.seq):
                        self.counters["late_frames"] += 1  # its part was already decided without it
                        return
                    uid = f"{self.run_id}-{frame.seq:07d}"
                    recipe.assembler.open(uid, frame.part_id or f"{self.run_id}-{frame.seq}")
                    part = self._parts.open(PartInFlight(uid, recipe, frame.acquired, seq_key=key))
                else:
                    uid, part = found.uid, found
            runners = recipe.by_source.get(frame.source, [])
            if frame.on_recorded is not None:
                part.on_recorded.append(frame.on_recorded)
        for runner in runners:
            if runner.config.after and not frame.error:
                with self._lock:
                    run_it = part.cascade.pop(runner.name, None)
                    if run_it is None:  # its pre-screen has not decided yet: hold the image
                        part.deferred[runner.name] = frame
                        continue
                if not run_it:
                    continue  # the pre-screen passed the part: this check was skipped
            self.inspection.submit(uid, runner, frame, backpressure)

    def _triggered_sources(self, recipe: _Recipe) -> list[str]:
        """The sources this recipe reads that take triggers: what one trigger fires."""
        return [n for n in recipe.by_source if n in self.sources and self.sources[n].gate is not None]

    def _recipes_in_flight(self) -> list[_Recipe]:
        """The active recipe and every recipe a part still open was taken under (each once)."""
        return list({id(r): r for r in [self.recipe, *self._parts.recipes()]}.values())

    def _backlog_full(self) -> bool:
        return self._closed.qsize() >= self.config.record_backlog

    def _record_has_room(self, can_wait: bool) -> bool:
        """Bounded end to end: while the record is ``record_backlog`` parts behind, a source that
        can wait (files) waits; a part from one that cannot (a camera, a line) is refused at the
        source — counted, with an event when refusing starts and when the backlog has drained."""
        if not self._backlog_full():
            return True
        if can_wait:
            while self._backlog_full() and not self._stop.is_set():
                time.sleep(0.005)
            return True
        with self._lock:
            self.counters["refused_backlog"] += 1
            starting, self._refusing = not self._refusing, True
        if starting:
            self.store.add_event(
                self.name,
                "backlog_full",
                f"{self.config.record_backlog} decided parts wait to be recorded: "
                "refusing parts at the source",
            )
        return False

    def _admit_name(self, frame: Frame) -> Frame:
        """A part ID from a file name follows the one rule; one that breaks it (too long) fails
        its part, recorded under a shortened ID, instead of failing the record."""
        try:
            return replace(frame, part_id=admit_part_id(frame.part_id))
        except ValueError as exc:
            with self._lock:
                self.counters["part_ids_refused"] += 1
            escaped = storable_text(frame.part_id or "")
            digest = hashlib.sha256(escaped.encode("utf-8", "surrogateescape")).hexdigest()[:12]
            short = f"{escaped[: MAX_PART_ID_CHARS - 14]}~{digest}"
            return replace(frame, part_id=short, error=f"part ID refused: {exc}", data=None, image=None)

    def _cascade_after(self, part: PartInFlight, outcome: CheckOutcome) -> None:
        """A pre-screen decided: its detailed checks run if it flagged or failed the part, else skip."""
        uid, recipe = part.uid, part.recipe
        for runner in recipe.dependents.get(outcome.check, ()):
            run_it = not outcome.valid or (
                outcome.decision is not None and outcome.decision.value in runner.config.when
            )
            self.counters["cascade_run" if run_it else "cascade_skipped"] += 1
            frame = part.deferred.pop(runner.name, None)
            if not run_it:
                closed = recipe.assembler.skip(uid, runner.name)
                if closed is not None:
                    self._closed.put(closed)
            elif frame is not None:
                self.inspection.submit(uid, runner, frame, backpressure=False)
            else:
                part.cascade[runner.name] = True  # its image is still to come
            if not run_it and frame is None:
                part.cascade[runner.name] = False

    def _add(self, uid: str, run: CheckRun) -> None:
        with self._lock:
            part = self._parts.get(uid)
            if part is None or not part.recipe.assembler.is_open(uid):
                (part.recipe if part else self.recipe).assembler.add(uid, run.outcome)  # counts it late
                return
            part.runs[run.outcome.check] = run
            closed = part.recipe.assembler.add(uid, run.outcome)
            if closed is not None:
                self._closed.put(closed)
            elif run.outcome.check in part.recipe.dependents:
                self._cascade_after(part, run.outcome)

    def _is_open(self, uid: str) -> bool:
        with self._lock:
            part = self._parts.get(uid)
            return part is not None and part.recipe.assembler.is_open(uid)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    # -- deciding, recording, reporting ------------------------------------------------

    def _decide(self) -> None:
        # Runs until told to stop *and* every decided part is recorded: nothing decided is dropped.
        while not self._halt_decide.is_set() or not self._closed.empty():
            parts = []
            try:
                parts.append(self._closed.get(timeout=0.01))
                while len(parts) < GROUP_COMMIT_MAX:  # all that waits goes in one transaction
                    parts.append(self._closed.get_nowait())
            except queue.Empty:
                pass
            with self._lock:
                for recipe in self._recipes_in_flight():
                    parts.extend(recipe.assembler.expire())
            if not parts or self.state == "error":
                continue  # nothing more is reported once a decision could not be made durable
            try:
                self._finish(parts)
            except Exception as exc:  # never report what could not be recorded: stop deciding
                log.exception("deciding parts %s...", parts[0].uid)
                self._fail(f"cannot decide part {parts[0].uid}: {type(exc).__name__}: {exc}")
            if self._refusing and self._closed.qsize() < self.config.record_backlog // 2:
                self._refusing = False
                self.store.add_event(
                    self.name,
                    "backlog_cleared",
                    f"{self.counters['refused_backlog']} parts refused at the source so far",
                )

    def _finish(self, parts: list[AssembledPart]) -> None:
        """Record the parts (one group commit), then report each, in order."""
        flights, records = [], []
        for part in parts:
            with self._lock:
                flight = self._parts.close(part.uid)
            if flight is None:  # decided before anything opened it here (cannot happen; be safe)
                flight = PartInFlight(part.uid, self.recipe, time.monotonic())
            flights.append(flight)
            records.append(self.recorder.record_of(part, flight))
        try:
            wheres = self.store.record_many(records)
        except Exception as exc:
            self._fail(f"cannot make part {records[0].uid} durable: {type(exc).__name__}: {exc}")
            return
        for record, where, flight in zip(records, wheres, flights, strict=True):
            self._report(record, where, flight)

    def _report(self, record: PartRecord, where: str, flight: PartInFlight) -> None:
        started = flight.started
        for hook in flight.on_recorded:  # a watched folder remembers, moves or deletes the file: only now
            try:
                hook()
            except Exception as exc:
                log.error("part %s recorded; its source could not finish with the file: %s", record.uid, exc)
        latency_ms = 1e3 * (time.monotonic() - started)
        with self._lock:
            self.counters["parts"] += 1
            self.counters[record.verdict] += 1
            self.counters["journalled"] += where == "journal"
            self.counters["quarantined"] += where == "quarantine"
            self._latencies.append(latency_ms)
            self._decided_times.append(time.monotonic())
            result = PublishedResult(
                seq=self.counters["parts"],
                uid=record.uid,
                part_id=record.part_id,
                verdict=record.verdict,
                reason=record.reason,
                scores={c.check: c.score for c in record.checks},
                decisions={c.check: c.decision for c in record.checks},
                measurements={
                    c.check: {m.name: m.value for m in c.measurements}
                    for c in record.checks
                    if c.measurements
                },
                decided_at=record.decided_at.isoformat(),
                latency_ms=latency_ms,
                recipe=record.recipe,
            )
            self.last_result = result
        for sink in self.sinks:
            try:
                sink.publish(result)
            except Exception as exc:  # a broken sink must not stop the record or the other sinks
                log.error("sink %s: %s", type(sink).__name__, exc)
        self.counters["reported"] += 1
        try:
            self._watch_drift(record, flight)
        except Exception:  # watching for drift must never stop the line from deciding
            self.counters["drift_errors"] += 1
            log.exception("drift monitoring, part %s", record.uid)

    def _watch_drift(self, record: PartRecord, flight: PartInFlight) -> None:
        """Each judged check's statistics into its drift monitor (in decide order); an alarm that
        rises or clears is a station event and a message to every sink."""
        watch = flight.recipe.drift
        for check, run in flight.runs.items():
            if run.drift is None:
                continue
            for event in watch.update(check, run.drift, record.decided_at):
                self.store.add_event(self.name, f"drift_{event.state}", describe(check, event))
                for sink in self.sinks:
                    try:
                        sink.drift(check, event)
                    except Exception as exc:
                        log.error("sink %s: %s", type(sink).__name__, exc)

    def _fail(self, error: str) -> None:
        """Stop deciding: the line must see the station as faulted, not as passing parts."""
        self.error, self.error_code, self.state = error, ErrorCode.RECORD_FAILED, "error"
        log.critical(error)
        self._notify_state()
        self._stop.set()

    def _notify_state(self) -> None:
        for sink in self.sinks:
            try:
                sink.set_state(self.state, self.error_code)
            except Exception as exc:
                log.error("sink %s: %s", type(sink).__name__, exc)

    # -- status ------------------------------------------------------------------------

    def _backlog_age(self, now: float) -> float:
        """How long the oldest decided-but-unrecorded part has waited (s)."""
        with self._closed.mutex:
            oldest = self._closed.queue[0] if self._closed.queue else None
        return 0.0 if oldest is None else max(0.0, now - oldest.closed_at)

    def health(self) -> tuple[str, list[str]]:
        """("ok" | "degraded" | "error", problems): degraded = deciding, but a source, sink, PLC
        server or the database is down."""
        if self.state != "running":
            return "error", [self.error or f"station {self.state}"]
        problems = [
            f"source {name} stopped"
            for name, source in self.sources.items()
            if not source.finite and name in self._sources_done
        ]
        if self.error:
            problems.append(self.error)
        for sink in self.sinks:
            problem = sink.problem()
            if problem:
                problems.append(problem)
        if len(self.store.journal):
            problems.append(
                f"database unreachable ({self.store.last_error}); "
                f"{len(self.store.journal)} parts in the journal"
            )
        return ("degraded" if problems else "ok"), problems

    def status(self) -> StationStatus:
        with self._lock:
            latencies = np.asarray(self._latencies, np.float64)
            now = time.monotonic()
            recent = [t for t in self._decided_times if now - t <= 60.0]
            span = recent[-1] - recent[0] if len(recent) > 1 else 0.0
            rate = 60.0 * (len(recent) - 1) / span if span > 0 else 0.0
            assembler = self.recipe.assembler
            drift = self.recipe.drift.state()
            return StationStatus(
                station=self.name,
                state=self.state,
                error=self.error,
                error_code=int(self.error_code),
                run_id=self.run_id,
                recipe=self.recipe.name,
                started_at=self.started_at.isoformat() if self.started_at else None,
                counters=dict(self.counters),
                late_results=assembler.late,
                parts_per_min_last_60s=rate,
                latency_ms_p50=float(np.percentile(latencies, 50)) if latencies.size else None,
                latency_ms_p99=float(np.percentile(latencies, 99)) if latencies.size else None,
                queue_depth=self.inspection.depth,
                parts_in_flight=assembler.pending,
                record_backlog=self._closed.qsize(),
                record_backlog_age_s=self._backlog_age(now),
                journal_pending=len(self.store.journal),
                store_error=self.store.last_error,
                sinks={type(sink).__name__: sink.stats() for sink in self.sinks},
                last_result=self.last_result,
                drift=drift,
                drift_alarms=standing_alarms(drift),
            )
