"""Training checkpoints: safetensors for tensors (model, best weights, optimiser moments), JSON for
the rest (epoch, history, early-stopping counters, schedule). Nothing is unpickled on resume."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from lineguard.errors import ModelFileError


def state_to_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(folder: Path, module, optimizer, schedule, state, best_weights) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in state_to_cpu(module).items()}
    tensors.update({f"best.{k}": v for k, v in best_weights.items()})
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous().clone()
    save_file(tensors, str(folder / "last.tmp.safetensors"))
    (folder / "last.tmp.safetensors").replace(folder / "last.safetensors")
    doc = {
        "state": state,
        "param_groups": opt["param_groups"],
        "schedule": schedule.state_dict() | {"lr_lambdas": None},
    }
    (folder / "last.tmp.json").write_text(json.dumps(doc, default=float))
    (folder / "last.tmp.json").replace(folder / "last.json")


def load_checkpoint(folder: Path, module, optimizer, schedule):
    doc = json.loads((folder / "last.json").read_text())
    try:
        tensors = load_file(str(folder / "last.safetensors"))
    except (OSError, SafetensorError) as exc:
        raise ModelFileError(f"{folder / 'last.safetensors'}: unreadable checkpoint ({exc})") from None
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": doc["param_groups"]})
    schedule_state = {k: v for k, v in doc["schedule"].items() if k != "lr_lambdas"}
    schedule.__dict__.update(schedule_state)
    return doc["state"], best
