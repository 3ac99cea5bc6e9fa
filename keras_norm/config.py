"""What a run is, in three parts: what it learns, how it runs, where its files go.

* `Learning` names the run: every field that differs from its default goes into the folder name,
  so a quick `--epochs=1` run never lands on (or is mistaken for) a full run.
* `Runtime` says how fast and where the same run is computed (threads, the speed engine, tf.distribute);
  it never changes the name, because it does not change what is learned.
* `Outputs` says where the files go and what is written.

Suite parameters (`SuiteOptions`) belong to the suites, not to a run; the benchmark's are in
keras_norm/bench/options.py. This module imports no
TensorFlow: the command line validates everything here before paying for that import.
"""

import dataclasses
import math
import re
from typing import Optional

from keras_norm.errors import KerasNormError

NORMS = ("bn", "gn", "ln", "in", "none")
LN_IMPLS = ("group", "layer")
SCHEDULES = ("constant", "step", "onecycle")
DISTRIBUTE = ("none", "mirrored", "multi_worker")
DEFAULT_GROUPS = 4
# Channel widths of the CNN (see keras_norm/model.py): two 3x3 convs, a 1x1 transition, three 3x3.
BLOCK1 = (8, 16)
TRANSITION = 8
BLOCK2 = (16, 16, 16)
NORMALIZED_CHANNELS = BLOCK1 + BLOCK2  # every layer that a norm follows
# Learning fields that go into the run name as `tag-value` when they differ from the default.
NAME_TAGS = (
    ("epochs", "epochs"), ("batch_size", "bs"), ("lr", "lr"), ("momentum", "momentum"), ("schedule", "sched"),
    ("dropout", "dropout"), ("augment", "noaug"), ("rotation_degrees", "rot"), ("train_limit", "train"),
    ("test_limit", "test"), ("val_fraction", "val"),
)
MAX_SEED = 2**32 - 1  # NumPy's seed range


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


def check_choice(name, value, choices):
    if value not in choices:
        raise KerasNormError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def check_range(name, value, low, high=math.inf, low_open=False, high_open=False):
    """One message for every out-of-range, NaN or infinite number."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
        raise KerasNormError(f"--{name} must be in {left}{show(low)}, {show(high)}{right}, got {value}")


@dataclasses.dataclass(frozen=True)
class Learning:
    """Everything that changes what a run learns."""

    norm: str = "bn"
    groups: int = DEFAULT_GROUPS  # for `gn`; every normalized layer has 8 or 16 channels
    ln_impl: str = "group"  # `ln` as GroupNormalization(1) (keeps the budget) or LayerNormalization
    renorm: bool = False  # `bn` with batch renormalization (Ioffe 2017)
    weight_standardization: bool = False  # 3x3 convolutions with standardized kernels (Qiao et al. 2019)
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.05
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05  # the peak rate for `onecycle`, the rate itself for the others
    momentum: float = 0.9
    schedule: str = "onecycle"
    seed: int = 0
    augment: bool = True
    rotation_degrees: float = 7.0
    data_path: Optional[str] = None
    train_limit: int = 0  # >0: only the first N training images (tests, quick looks)
    test_limit: int = 0
    val_fraction: float = 1 / 12  # held out of the training images for every choice (5,000 of MNIST's 60,000)

    def validate(self):
        check_choice("norm", self.norm, NORMS)
        check_choice("ln_impl", self.ln_impl, LN_IMPLS)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name in ("l1", "l2"):
            check_range(name, getattr(self, name), 0, 1)
        check_range("dropout", self.dropout, 0, 1, high_open=True)
        check_range("lr", self.lr, 0, 1e6, low_open=True)
        check_range("momentum", self.momentum, 0, 1, high_open=True)
        check_range("rotation_degrees", self.rotation_degrees, 0, 180)
        check_range("epochs", self.epochs, 1, 10_000)
        check_range("batch_size", self.batch_size, 1, 100_000)
        check_range("seed", self.seed, 0, MAX_SEED)
        check_range("train_limit", self.train_limit, 0, 10**9)
        check_range("test_limit", self.test_limit, 0, 10**9)
        check_range("val_fraction", self.val_fraction, 0, 0.5, low_open=True)
        check_groups("gn", self.groups)  # the flag's own range, whatever the norm
        if self.renorm and self.norm != "bn":
            raise KerasNormError(f"--renorm is batch renormalization: it needs --norm=bn, not --norm={self.norm}")
        if self.data_path is not None and not self.data_path.strip():
            raise KerasNormError("--data_path is empty")

    def name(self):
        """Readable and unique per setting, without the seed: `ln_l2-0.001`, `bn_l1-1e-05_epochs-1`."""
        head = self.norm if self.norm != "ln" or self.ln_impl == "group" else "ln-layer"
        if self.norm == "gn" and self.groups != DEFAULT_GROUPS:
            head += f"{self.groups}"
        head += "-renorm" * self.renorm + "-ws" * self.weight_standardization
        parts = [head] + [f"{k}-{getattr(self, k):g}" for k in ("l1", "l2") if getattr(self, k)]
        default = Learning()
        for field, tag in NAME_TAGS:
            value = getattr(self, field)
            if value != getattr(default, field):
                parts.append(tag if isinstance(value, bool) else f"{tag}-{value:g}" if isinstance(value, float)
                             else f"{tag}-{value}")
        return "_".join(parts)


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How the run is computed: none of it changes what is learned."""

    fast: bool = True  # train with the speed engine (keras_norm/engine): same layers, faster ops
    threads: int = 0  # TensorFlow threads per op pool (intra- and inter-op); 0 = TensorFlow's default
    steps_per_execution: int = 64  # batches per compiled call: same updates, less per-step overhead
    deterministic: bool = False  # TensorFlow op determinism (same seed -> same bits)
    distribute: str = "none"  # tf.distribute strategy (keras_norm/distribute.py)
    sync_bn: bool = True  # synchronized BatchNormalization when there is more than one replica
    logical_cpus: int = 0  # >1: split the CPU into that many devices (to try `mirrored` without GPUs)

    def validate(self):
        check_choice("distribute", self.distribute, DISTRIBUTE)
        check_range("threads", self.threads, 0, 1024)
        check_range("steps_per_execution", self.steps_per_execution, 1, 10_000)
        check_range("logical_cpus", self.logical_cpus, 0, 64)


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Where a run's files go and which are written."""

    artifacts_dir: str = "artifacts"
    run_name: Optional[str] = None  # the run folder's name, used verbatim
    tensorboard: bool = False
    overwrite: bool = False
    export: bool = True  # the SavedModel of the validation-best weights

    def validate(self):
        if not self.artifacts_dir.strip():
            raise KerasNormError("--artifacts_dir is empty")
        name = self.run_name
        if name is not None and (not name.strip() or "/" in name or "\\" in name or name.startswith(".")
                                 or not name.isprintable() or len(name) > 200):
            raise KerasNormError(f"--run_name must be a plain folder name, got {name!r}")


GROUPS = {"learning": Learning, "runtime": Runtime, "outputs": Outputs}
FIELD_GROUP = {f.name: group for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run: its learning settings, its runtime and its outputs (plus the dataset it trained on)."""

    learning: Learning = Learning()
    runtime: Runtime = Runtime()
    outputs: Outputs = Outputs()
    dataset: str = "mnist"  # set once the data is loaded; the offline sample tags the name

    @classmethod
    def create(cls, **values):
        """Builds a config from flat field names, e.g. `RunConfig.create(norm="ln", l2=1e-3, threads=1)`."""
        return cls().replace(**values)

    def replace(self, **changes):
        """A copy with flat field names changed, each routed to its group."""
        unknown = sorted(set(changes) - set(FIELD_GROUP) - {"dataset"})
        if unknown:
            raise TypeError(f"unknown config field(s): {', '.join(unknown)}")
        parts = {}
        for group in GROUPS:
            own = {k: v for k, v in changes.items() if FIELD_GROUP.get(k) == group}
            parts[group] = dataclasses.replace(getattr(self, group), **own)
        return dataclasses.replace(self, dataset=changes.get("dataset", self.dataset), **parts)

    def validate(self):
        """Raises KerasNormError with one readable line for the first bad value."""
        for group in GROUPS:
            getattr(self, group).validate()
        return self

    @property
    def name(self):
        """The run's name without the seed; `--run_name` when given."""
        if self.outputs.run_name:
            return self.outputs.run_name
        return self.learning.name() + ("" if self.dataset == "mnist" else "_sample")

    @property
    def folder_name(self):
        """The run folder: `--run_name` verbatim, else the name plus the seed when it is not 0."""
        if self.outputs.run_name or self.learning.seed == 0:
            return self.name
        return f"{self.name}_seed-{self.learning.seed}"

    def flat(self):
        """Every field by its flag name (config.json's `flags`)."""
        return {k: v for group in GROUPS for k, v in dataclasses.asdict(getattr(self, group)).items()}


SCALES = ("full", "tiny")


@dataclasses.dataclass(frozen=True)
class SuiteOptions:
    """Parameters of the suites (`--suite`), not of a run."""

    jobs: Optional[int] = None  # parallel training processes (default: min(2, cores))
    sweep_epochs: int = 5  # epochs per cell of the batch sweep
    sweep_seeds: Optional[int] = None  # seeds 0..N-1 per cell of the batch sweeps (default: each suite's own)
    replot: bool = False  # redraw the suite's figures from its JSON (no training, no models)
    dry_run: bool = False  # with --suite=all: list what would run and what is done, train nothing
    cluster: str = ""  # a Dask scheduler's address (tcp://HOST:PORT), "local" for an embedded one, "": no cluster
    runs_per_gpu: int = 0  # on a cluster: runs sharing each GPU (workers with --resources GPU=1); 0: no GPU
    scale: str = "full"  # with --suite=all: "full" (the committed study) or "tiny" (every suite at its smallest shape)

    def validate(self):
        if self.jobs is not None:
            check_range("jobs", self.jobs, 1, 64)
        check_range("runs_per_gpu", self.runs_per_gpu, 0, 64)
        address = r"(tcp|tls|ucx|inproc)://\S+:\d+"
        if self.cluster and self.cluster != "local" and not re.fullmatch(address, self.cluster):
            raise KerasNormError(f"--cluster must be a Dask scheduler's address such as tcp://HOST:8786, or local "
                                 f"(got {self.cluster!r})")
        if self.runs_per_gpu and not self.cluster:
            raise KerasNormError("--runs_per_gpu places runs on a cluster's GPUs; give --cluster too")
        check_range("sweep_epochs", self.sweep_epochs, 1, 10_000)
        if self.sweep_seeds is not None:
            check_range("sweep_seeds", self.sweep_seeds, 1, 100)
        if self.scale not in SCALES:
            raise KerasNormError(f"--scale must be one of {', '.join(SCALES)} (got {self.scale!r})")
        return self
