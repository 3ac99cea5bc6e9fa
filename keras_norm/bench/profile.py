"""Where a training step's time goes: TensorFlow's profiler over real steps of the benchmark's paths.

    python main.py --bench --bench_profile --data_path=mnist.npz [--bench_norms=bn]

For each norm, `steps` training steps of the engine's path (the engine's model, the tf.data pipeline,
`steps_per_execution`) and of the norm-kernel path (paths.py) run under
`tf.profiler.experimental`; the trace's op events are summed per op type and per layer, and divided by
the steps. An op's own time is counted on the thread that runs it; ops may also run side by side, so the op
times of a step can add up to more than its wall time (`wall_ms_per_step`, from the same window): they say
where the work is, not what a step waits for.
Ops of the input pipeline (tf.data's threads) are counted apart, as `input_pipeline_ms_per_step`.
"""

import collections
import glob
import os
import re
import tempfile

import tensorflow as tf

from keras_norm.errors import KerasNormError

_OP_TYPE = re.compile(r"_?[A-Z]\w*")  # "Conv2D", "_MklNativeConv2D", "KerasNormConv3x3"
OUTSIDE = "(outside any layer)"
TOP = 15  # rows kept per table


def _xplane_pb2():
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError as e:  # a private module of TensorFlow: it may move
        raise KerasNormError(f"this TensorFlow has no profiler trace reader ({e})") from None
    return xplane_pb2


def trace(run_steps, steps):
    """Calls `run_steps(steps)` (trains, returns seconds per step) under the profiler; returns (the trace's
    XSpace, seconds per step)."""
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            seconds = run_steps(steps)
        finally:
            tf.profiler.experimental.stop()
        space = _xplane_pb2().XSpace()
        with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    return space, seconds


def op_events(space):
    """(where, op name, op type, milliseconds) of every TensorFlow op the trace saw; `where` is "step" for
    the executor's threads and "input" for tf.data's. Op events are named "<scope>/<op>:<OpType>"."""
    for plane in space.planes:
        for line in plane.lines:
            where = "step" if line.name.startswith("tf_Compute") else \
                "input" if line.name.startswith("tf_data") else None
            for event in line.events if where else ():
                op, _, kind = plane.event_metadata[event.metadata_id].name.rpartition(":")
                if op and _OP_TYPE.fullmatch(kind) and not op.endswith(":"):  # not "ExecutorState::Process"
                    yield where, op, kind, event.duration_ps / 1e9


def layer_of(op, layers):
    """The model layer an op's name is scoped under ("gradient_tape/cnn/conv2_1/..." -> "conv2"; graph
    scopes add "_1"), or OUTSIDE (e.g. a gradient registered for a custom op, scoped on its own)."""
    for part in op.split("/"):
        for name in (part, re.sub(r"_\d+$", "", part)):
            if name in layers:
                return name
    return OUTSIDE


def summarize(events, steps, layers):
    """Milliseconds per step: the step's ops per type and per layer, the input pipeline's in total."""
    by_type, by_layer, total, inputs = collections.Counter(), collections.Counter(), 0.0, 0.0
    for where, op, kind, ms in events:
        if where == "input":
            inputs += ms
            continue
        by_type[kind] += ms
        by_layer[layer_of(op, layers)] += ms
        total += ms
    per_step = lambda counts: {k: round(v / steps, 3) for k, v in counts.most_common(TOP)}  # noqa: E731
    return {"op_ms_per_step": round(total / steps, 3), "by_op_type": per_step(by_type),
            "by_layer": per_step(by_layer), "input_pipeline_ms_per_step": round(inputs / steps, 3)}


def profile(run_steps, steps, layers):
    """One profile dict of `steps` steps of `run_steps` (after as many warm-up steps); `layers`: the model's
    layer names."""
    run_steps(steps)  # tracing and thread pools first
    space, seconds = trace(run_steps, steps)
    return {"steps": steps, "wall_ms_per_step": round(1e3 * seconds, 3),
            **summarize(op_events(space), steps, set(layers))}
