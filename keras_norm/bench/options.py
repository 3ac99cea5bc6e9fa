"""The benchmark's parameters (`--bench_*` flags). No TensorFlow here: the command line validates them first."""

import dataclasses

from keras_norm.config import NORMS, Runtime, check_range
from keras_norm.errors import KerasNormError


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """Parameters of the training-speed benchmark (`--bench`, keras_norm/bench/steps.py)."""

    norms: tuple = ("bn", "gn", "ln")
    steps: int = 256  # training steps per repeat (four calls of 64; the first is not timed)
    repeats: int = 7  # interleaved repeats; the median counts
    levers: bool = False  # also time each speed lever alone
    step_speedup_path: str = ""  # if set, the step speedup over the norm-kernel path per norm is written there (JSON)
    profile: bool = False  # also profile `steps` steps per norm and path (profile.py)
    runs: int = 0  # if > 0, also time whole training runs, this many interleaved times (runs.py)
    parts: bool = False  # also time the engine's path without each of its parts (paths.PARTS)

    def validate(self):
        unknown = [n for n in self.norms if n not in NORMS]
        if unknown or not self.norms:
            raise KerasNormError(f"unknown norm(s) {', '.join(unknown) or '(none given)'} in --bench_norms; "
                                 f"choose from {', '.join(NORMS)}")
        check_range("bench_repeats", self.repeats, 1, 1000)
        check_range("bench_runs", self.runs, 0, 100)
        spe = Runtime().steps_per_execution
        if self.steps < 2 * spe:  # a timing runs from the end of the first compiled call to the end of the last
            raise KerasNormError(f"--bench_steps must be at least {2 * spe} (two calls of {spe} steps)")
        check_range("bench_steps", self.steps, 2 * spe, 100_000)
        if self.step_speedup_path and not self.step_speedup_path.endswith(".json"):
            raise KerasNormError(f"--bench_step_speedup must name a .json file, not {self.step_speedup_path!r}")
        return self
