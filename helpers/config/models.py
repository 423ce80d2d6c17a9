"""The ``models`` section: each model's spec, checked by its registry entry against the data."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..params import Params, check
from ..registry import DEFENCES, MODELS
from .data import DatasetSection
from .training import TrainingSection


# Attacks and attributions run the models on batches of up to this many points (the memory check).
EVALUATION_BATCH = 512


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of ``models``: its registry ``type``, that model's ``Params`` and, for a
    defended model, its ``defence`` (the entry's name and ``Params``; None: trained on the
    clean cross-entropy). The defence is part of the spec, so it enters the train unit's key."""

    type: str
    params: Params
    defence: tuple[str, Params] | None = None
    training: dict | None = None      # keys of ``training`` this model overrides (its own optimiser, say)
    checkpoint: str | None = None     # a state_dict under the data folder: imported, not trained

    def to_dict(self) -> dict:
        return {"type": self.type, **self.params.to_dict(), **self.defence_dict(),
                **({"training": dict(self.training)} if self.training else {}),
                **({"checkpoint": self.checkpoint} if self.checkpoint else {})}

    def defence_dict(self) -> dict:
        """``{"defence": {name, ...parameters}}``, or nothing for an undefended model (whose
        spec, and so whose train key, stays as it was before defences existed)."""
        if self.defence is None:
            return {}
        return {"defence": {"name": self.defence[0], **self.defence[1].to_dict()}}

    def training_section(self, shared: "TrainingSection") -> "TrainingSection":
        """The training of this model: the config's ``training`` with this model's overrides."""
        if not self.training:
            return shared
        return TrainingSection.parse({**shared.to_dict(), **self.training}, "training")

    def model_dict(self) -> dict:
        """The spec without its defence: what builds the model (and its undefended sibling's spec)."""
        return {"type": self.type, **self.params.to_dict()}


DEFAULT_MODELS = {"mlp": {"type": "mlp"}, "cnn": {"type": "cnn"}, "vqc": {"type": "vqc"}}


def parse_models(given, dataset: DatasetSection, training: TrainingSection) -> dict[str, ModelSpec]:
    """``models``: name -> ``ModelSpec``, each checked by its entry against the data (input
    shape, classes, and the memory a circuit's simulation needs); ``match: <name>`` specs
    resolved to a parameter count first (``models.match_capacity``)."""
    from ..defences.base import parse_defence
    from ..models import HOW_TRAINED, DataShape, match_capacity

    check(isinstance(given, Mapping) and len(given) > 0, "models must be a non-empty mapping of name -> {type: ..., ...}")
    for name, spec in given.items():
        check(isinstance(spec, Mapping) and "type" in spec, f"models.{name} must be a mapping with a 'type' key")
    shape = DataShape(dataset.input_shape, len(dataset.classes), max(training.batch_size, EVALUATION_BATCH))

    def parse(name, spec):
        entry = MODELS.lookup(spec["type"], f"models.{name}.type")
        params = entry.Params.parse({k: v for k, v in spec.items() if k != "type"}, f"models.{name}",
                                    owner=f"type {spec['type']!r}")
        entry.check(params, shape, f"models.{name}")
        defence = None
        if aside[name].get("defence") is not None:
            defence = parse_defence(aside[name]["defence"], f"models.{name}.defence")
            DEFENCES[defence[0]].check_model(spec["type"], params, f"models.{name}.defence")
        own = aside[name].get("training")
        if own is not None:
            check(isinstance(own, Mapping), f"models.{name}.training must be a mapping of training keys, got {own!r}")
            TrainingSection.parse({**training.to_dict(), **own}, f"models.{name}.training")
        checkpoint = aside[name].get("checkpoint")
        if checkpoint is not None:
            check(isinstance(checkpoint, str), f"models.{name}.checkpoint must be a path under the data folder")
            from ..store.checkpoints import check_state_dict
            check_state_dict(checkpoint, spec["type"], params, shape, f"models.{name}.checkpoint")
        return ModelSpec(spec["type"], params, defence, dict(own) if own else None, checkpoint)

    # A spec's `defence`, `training` and `checkpoint` say how it is trained (or that it is not),
    # not what the model is: set aside before the model's Params (and a capacity match, which
    # sizes from the model alone) read the spec.
    aside = {name: {k: spec[k] for k in HOW_TRAINED if k in spec} for name, spec in given.items()}
    given = {name: {k: v for k, v in spec.items() if k not in HOW_TRAINED} for name, spec in given.items()}
    # Capacity-matched models (`match: <name>`) are sized from models checked before them.
    specs = {name: parse(name, spec) for name, spec in given.items() if "match" not in spec}
    resolved = match_capacity(given, shape.input_shape, shape.n_classes)
    specs.update({name: parse(name, resolved[name]) for name, spec in given.items() if "match" in spec})
    return {name: specs[name] for name in given}
