"""One object that holds every hyperparameter of a run (the flax-example style)."""

import dataclasses
from typing import Optional

from keras_norm.errors import KerasNormError

NORMS = ("bn", "gn", "ln", "in", "none")
LN_IMPLS = ("group", "layer")
SCHEDULES = ("constant", "step", "onecycle")
DISTRIBUTE = ("none", "mirrored", "multi_worker")
# (Config field, tag in the run name) for the settings that change what a run learns.
NAMED_SETTINGS = (
    ("epochs", "epochs"), ("batch_size", "bs"), ("lr", "lr"), ("momentum", "momentum"), ("schedule", "sched"),
    ("dropout", "dropout"), ("augment", "noaug"), ("rotation_degrees", "rot"), ("train_limit", "train"),
    ("test_limit", "test"), ("fused", "nofused"),  # Keras's own norm classes: the speed baseline's model
)
DEFAULT_GROUPS = 4
# Channel widths of the CNN (see keras_norm/model.py): two 3x3 convs, a 1x1 transition, three 3x3.
BLOCK1 = (8, 16)
TRANSITION = 8
BLOCK2 = (16, 16, 16)
NORMALIZED_CHANNELS = BLOCK1 + BLOCK2  # every layer that a norm follows


def check_groups(norm, groups):
    """GroupNormalization needs `groups` to divide the channels of every normalized layer."""
    if norm != "gn":
        return
    for c in NORMALIZED_CHANNELS:
        if groups <= 0 or c % groups:
            raise KerasNormError(
                f"--groups={groups} does not divide the {c} channels of a normalized layer "
                f"(channel counts: {', '.join(map(str, NORMALIZED_CHANNELS))})"
            )


@dataclasses.dataclass
class Config:
    # Model.
    norm: str = "bn"
    groups: int = DEFAULT_GROUPS  # for `gn`; every normalized layer has 8 or 16 channels.
    ln_impl: str = "group"  # `ln` as GroupNormalization(1) (keeps the budget) or LayerNormalization.
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.05
    fused: bool = True  # faster ops for the same BN/GN layers (keras_norm/fused.py); False: Keras's own
    native: bool = True  # with `fused`, norm + ReLU train as one C++ kernel (keras_norm/native.py) if it builds
    # Optimization.
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05  # peak learning rate for `onecycle`, the rate itself for the others.
    momentum: float = 0.9
    schedule: str = "onecycle"
    seed: int = 0
    deterministic: bool = False
    steps_per_execution: int = 8  # batches per compiled call: same updates, less per-step overhead
    threads: int = 0  # TensorFlow threads per op pool (intra- and inter-op); 0 = TensorFlow's default
    # Distribution (keras_norm/distribute.py).
    distribute: str = "none"
    sync_bn: bool = True  # synchronized BatchNormalization when there is more than one replica
    logical_cpus: int = 0  # >1: split the CPU into that many devices (to try `mirrored` without GPUs)
    # Data.
    data_path: Optional[str] = None
    augment: bool = True
    rotation_degrees: float = 7.0
    train_limit: int = 0  # >0: use only the first N training images (tests, quick looks).
    test_limit: int = 0
    sweep_epochs: int = 2  # epochs per cell of --suite=batch_sweep
    sweep_seeds: int = 1  # seeds 0..N-1 per cell of --suite=batch_sweep
    # Outputs.
    artifacts_dir: str = "artifacts"
    run_name: Optional[str] = None
    tensorboard: bool = False
    overwrite: bool = False
    export: bool = True

    def validate(self):
        """Raises KerasNormError with one readable line for the first bad value."""
        if self.norm not in NORMS:
            raise KerasNormError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.ln_impl not in LN_IMPLS:
            raise KerasNormError(f"unknown ln_impl {self.ln_impl!r}; choose one of {', '.join(LN_IMPLS)}")
        if self.schedule not in SCHEDULES:
            raise KerasNormError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.distribute not in DISTRIBUTE:
            raise KerasNormError(f"unknown distribute {self.distribute!r}; choose one of {', '.join(DISTRIBUTE)}")
        if self.threads < 0:
            raise KerasNormError("--threads must be >= 0")
        if self.logical_cpus < 0:
            raise KerasNormError("--logical_cpus must be >= 0")
        for name in ("l1", "l2"):
            if not getattr(self, name) >= 0:  # also catches NaN
                raise KerasNormError(f"--{name} must be >= 0, got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "groups", "steps_per_execution", "sweep_epochs", "sweep_seeds"):
            if getattr(self, name) <= 0:
                raise KerasNormError(f"--{name} must be > 0, got {getattr(self, name)}")
        check_groups(self.norm, self.groups)
        if not 0 <= self.dropout < 1:
            raise KerasNormError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise KerasNormError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise KerasNormError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.train_limit < 0 or self.test_limit < 0:
            raise KerasNormError("--train_limit and --test_limit must be >= 0")
        if self.run_name is not None and (not self.run_name or "/" in self.run_name or self.run_name.startswith(".")):
            raise KerasNormError(f"--run_name must be a plain folder name, got {self.run_name!r}")
        return self

    @property
    def name(self):
        """The run's readable name without the seed, e.g. `ln_l2-0.001`, `bn_l1-1e-05_l2-0.001`."""
        if self.run_name:
            return self.run_name
        parts = [self.norm if self.norm != "ln" or self.ln_impl == "group" else "ln-layer"]
        if self.norm == "gn" and self.groups != DEFAULT_GROUPS:
            parts[0] += f"{self.groups}"
        if self.l1:
            parts.append(f"l1-{self.l1:g}")
        if self.l2:
            parts.append(f"l2-{self.l2:g}")
        # Any other setting that changes what is learned and differs from the default goes into the
        # name too, so a quick `--epochs=1` run never lands on (or is mistaken for) a full run.
        default = Config()
        for field, tag in NAMED_SETTINGS:
            value = getattr(self, field)
            if value != getattr(default, field):
                parts.append(tag if isinstance(value, bool) else f"{tag}-{value:g}" if isinstance(value, float)
                             else f"{tag}-{value}")
        return "_".join(parts)

    @property
    def folder_name(self):
        """The run folder: the name, plus the seed when it is not the default 0."""
        return self.name if self.seed == 0 else f"{self.name}_seed-{self.seed}"

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
