"""``train(task, data, format, out, config)``: the one entry that trains any task.

The task's registry entry names its config class and its trainer; the trainer reads the labels,
splits them by the config's seed, fits, records the split and the images it saw, and saves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from lineguard.tasks import get_task
from lineguard.train.config import TrainingConfig

if TYPE_CHECKING:
    from lineguard.station.preparation import PreparedCheck


@dataclass(frozen=True)
class TrainingHooks:
    """How a caller follows training; none of it changes what is learned."""

    progress: bool = True  # progress bars
    say: Callable[[str], None] | None = None  # a line on what training is about to do
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # supervised: each epoch's record
    on_trial: Callable[[dict[str, Any]], None] | None = None  # anomaly: each candidate's validation

    def tell(self, line: str) -> None:
        if self.say is not None:
            self.say(line)


class Trained(NamedTuple):
    model: Any  # the fitted model, already saved to ``out``
    split: Any  # the split it was trained on (its ``test`` is what evaluate will use)


def train(
    task: str,
    data: str | Path,
    format: str,
    out: str | Path,
    config: TrainingConfig | None = None,
    *,
    resume: bool = False,
    hooks: TrainingHooks = TrainingHooks(),
    prepare: PreparedCheck | None = None,
) -> Trained:
    """Train a ``task`` model on ``data`` (a ``format`` layout) with ``config`` (the task's
    defaults when None) and save it to ``out``. ``resume``: continue from ``out``'s checkpoint
    (supervised tasks). ``prepare``: train on the crop a station check prepares (its
    undistortion, alignment or fixture, ROI), every image, mask and box of the split through it;
    the model records which check, and `evaluate` prepares its test images the same way."""
    spec = get_task(task)
    config = config if config is not None else spec.config()
    if not isinstance(config, spec.config):
        raise TypeError(f"task {task!r} trains with a {spec.config.__name__}, not {type(config).__name__}")
    return spec.resolve("trainer")(
        data, format, Path(out), config, resume=resume, hooks=hooks, prepare=prepare
    )
