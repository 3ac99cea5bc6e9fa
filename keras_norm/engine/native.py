"""The project's C++ kernels (kernels/normalize.cc, conv3x3.cc, conv1x1.cc, maxpool.cc, dropout.cc and affine.cc
beside this file), built on first use.

TensorFlow computes GroupNormalization (and LayerNormalization over (H, W, C), its groups = 1 case)
as a chain of broadcasting element-wise ops, each a pass over the activations; on this project's
small CNN they cost more than a third of a training step. BatchNormalization has one oneDNN kernel,
but the ReLU after it is two more passes (forward and gradient). The kernel computes a norm and the
ReLU after it in two passes over the activations forward (statistics, then output) and two backward
(sums, then input gradient).

The conv kernels (conv3x3.cc and conv1x1.cc, `conv3x3` and `conv1x1` below) compute the convolutions and their
gradients; maxpool.cc (`max_pool2x2`) the 2x2 max pooling and its gradient; dropout.cc (`dropout_mask`) Keras's
dropout mask; affine.cc (`affine_transform` below) the input pipeline's random rotations.

`load()` compiles them into one library against the installed TensorFlow with the system C++ compiler (two
translation units in parallel, about 30 s on 2 cores, once: the library is cached under ~/.cache/keras_norm, keyed
by the sources, TensorFlow's version and the compiler commands, and processes that start together build it once)
and returns the op module, or None when it cannot be built (no compiler, a non-x86 TensorFlow build, ...);
callers then fall back to TensorFlow ops, and `why_not()` says why. Set KERAS_NORM_NATIVE=0 to never build or
use it.
"""

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading

import tensorflow as tf

try:
    import fcntl
except ImportError:  # not POSIX: no build lock (processes that start together each build; the rename is atomic)
    fcntl = None

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
# The translation units, compiled in parallel. Parsing TensorFlow's headers takes about 7 s per unit, so the
# small kernels share one; conv3x3.cc, whose own code takes about 17 s to compile, is the other.
UNITS = {"conv3x3": ["conv3x3.cc"], "kernels": ["normalize.cc", "conv1x1.cc", "affine.cc", "maxpool.cc", "dropout.cc"]}
SOURCES = [os.path.join(KERNELS, name) for names in UNITS.values() for name in names]
HEADERS = [os.path.join(KERNELS, "common.h")]  # included by the sources: part of the cache key
_state = {}  # "ops": the loaded module or None, "why": the reason it is None
_lock = threading.Lock()  # mirrored replicas trace layers on several threads


def cache_dir():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "keras_norm")


def _commands(folder):
    """The compiler commands that build the library in `folder`: one per source (run in parallel), then the link."""
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler (g++ or c++) on PATH")
    flags = ["-fPIC", "-O3", "-w"]
    if platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2") and _cpu_has("fma"):
        flags += ["-mavx2", "-mfma"]  # not -march=native: TensorFlow's Eigen headers break under AVX512-FP16
    objects = [os.path.join(folder, f"{unit}.o") for unit in UNITS]
    compiles = [[compiler, *flags, "-c", _unit_source(folder, unit), "-o", obj, *tf.sysconfig.get_compile_flags()]
                for unit, obj in zip(UNITS, objects)]
    link = [compiler, "-shared", *objects, "-o", os.path.join(folder, "kernels.so"), *tf.sysconfig.get_link_flags()]
    return compiles, link


def _cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return False


def _library_path(commands):
    key = hashlib.sha256()
    for source in SOURCES + HEADERS:
        with open(source, "rb") as f:
            key.update(f.read())
    key.update(" ".join([tf.__version__, sys.version, *(" ".join(c) for c in commands)]).encode())
    return os.path.join(cache_dir(), f"kernels-{key.hexdigest()[:16]}.so")


def _run_all(commands):
    """Runs the commands at once; raises with the first failure's last line of output."""
    jobs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [job.communicate() for job in jobs]
    for job, (_, err) in zip(jobs, outputs):
        if job.returncode != 0:
            last = (err.strip().splitlines() or ["(no message)"])[-1]
            raise RuntimeError(f"compiling the kernels failed: {last}")


def _build():
    compiles, link = _commands("BUILD")
    path = _library_path([*compiles, link])  # the key names no temporary folder
    if os.path.exists(path):
        return path
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:  # no writable home: build in the temporary directory instead
        user = os.getuid() if hasattr(os, "getuid") else "user"  # no getuid on Windows
        path = os.path.join(tempfile.gettempdir(), f"keras_norm-{user}", os.path.basename(path))
        os.makedirs(os.path.dirname(path), exist_ok=True)
    # Processes starting together (a suite's runs, parallel tests) build once: the others wait for the lock.
    with _exclusive(path + ".lock"):
        if not os.path.exists(path):
            print(f"building the speed engine's C++ kernels, once (about 30 s on 2 cores; cached in "
                  f"{os.path.dirname(path)}); --nofast trains Keras's own layers without them", file=sys.stderr,
                  flush=True)
            # Build beside the cache entry and rename it into place: no process ever sees half a file.
            folder = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(path))
            try:
                compiles, link = _commands(folder)
                _write_units(folder)
                _run_all(compiles)
                _run_all([link])
                os.replace(os.path.join(folder, "kernels.so"), path)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return path


def _unit_source(folder, unit):
    return os.path.join(folder, f"{unit}.cc")


def _write_units(folder):
    """Each unit's source: an #include of each of its kernel files."""
    for unit, names in UNITS.items():
        with open(_unit_source(folder, unit), "w") as f:
            f.writelines(f'#include "{os.path.join(KERNELS, name)}"\n' for name in names)


@contextlib.contextmanager
def _exclusive(lock_path):
    """Holds an exclusive lock on `lock_path` (the system releases it if the process dies)."""
    if fcntl is None:
        yield
        return
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load():
    """The op module (KerasNormNormalize, KerasNormNormalizeGrad), or None if it cannot be built."""
    with _lock:
        if "ops" not in _state:
            ops, why = None, ""
            if os.environ.get("KERAS_NORM_NATIVE", "1") == "0":
                why = "KERAS_NORM_NATIVE=0"
            else:
                try:
                    ops = tf.load_op_library(_build())
                except Exception as e:  # any failure means: use TensorFlow ops instead
                    why = f"{type(e).__name__}: {e}".splitlines()[0]
            _state.update(ops=ops, why=why)
    return _state["ops"]


def why_not():
    """Why `load()` returned None ('' if it did not)."""
    load()
    return _state["why"]


def computed_on_cpu(device, gpus_visible):
    """Whether a tensor placed on `device` (a TensorFlow device string, '' when unplaced) is computed on the
    CPU. Unplaced tensors go where TensorFlow puts ops by default: on a GPU when one is visible."""
    if device:
        return tf.DeviceSpec.from_string(device).device_type == "CPU"
    return not gpus_visible


def usable(allowed, inputs):
    """Whether a layer may use the C++ kernels on `inputs`: it is `allowed` to, they are built, and `inputs`
    are computed on the CPU (the kernels have no GPU version: on a GPU, TensorFlow's own ops run and no
    tensor is copied)."""
    if not allowed or not computed_on_cpu(inputs.device, bool(tf.config.list_logical_devices("GPU"))):
        return False
    return load() is not None


def normalize(x, gamma, beta, epsilon, groups=1, batch=False, relu=False):
    """Normalizes channels-last float32 (N, H, W, C) `x` with the C++ kernel, with its gradient.

    batch=True: BatchNormalization's training statistics (per channel over N, H, W); otherwise group
    normalization with `groups` groups (1: LayerNormalization over (H, W, C)). relu=True applies a ReLU
    to the result. Returns (y, mean, variance); mean and variance (biased) have shape (C,) for batch
    statistics and (N, groups) otherwise, and carry no gradient. Same values as the TensorFlow ops of
    fused.py (to float32 round-off); requires `load()` to succeed."""
    ops = load()
    attrs = dict(groups=groups, batch=batch, epsilon=epsilon, relu=relu)

    @tf.custom_gradient
    def _normalize(x, gamma, beta):
        y, mean, variance = ops.keras_norm_normalize(x, gamma, beta, **attrs)

        def grad(dy, *unused):  # the statistics only feed moving averages: no gradient through them
            return ops.keras_norm_normalize_grad(dy, x, gamma, beta, mean, variance, **attrs)

        return (y, mean, variance), grad

    return _normalize(x, gamma, beta)


def _convolution(name, x, kernel, input_gradient):
    """The op `keras_norm_<name>` with its gradient ops `..._input_grad` and `..._filter_grad`."""
    ops = load()
    forward, input_grad, filter_grad = (getattr(ops, f"keras_norm_{name}{part}")
                                        for part in ("", "_input_grad", "_filter_grad"))

    @tf.custom_gradient
    def _conv(x, kernel):
        def grad(dy):
            return (input_grad(dy, kernel) if input_gradient else None), filter_grad(x, dy)

        return forward(x, kernel), grad

    return _conv(x, kernel)


def conv3x3(x, kernel, input_gradient=True):
    """y = tf.nn.conv2d(x, kernel, 1, "VALID") for float32 (N, H, W, Ci) `x` and a (3, 3, Ci, Co) `kernel`,
    computed by the C++ kernel (kernels/conv3x3.cc), with its gradient.

    input_gradient=False: the gradient with respect to `x` is not computed (None), for a first layer whose
    input is the data. Requires `load()` to succeed."""
    return _convolution("conv3x3", x, kernel, input_gradient)


def conv1x1(x, kernel, input_gradient=True):
    """The same for a (1, 1, Ci, Co) `kernel`, computed by kernels/conv1x1.cc."""
    return _convolution("conv1x1", x, kernel, input_gradient)


def max_pool2x2(x):
    """keras.layers.MaxPooling2D(2)(x) for float32 (N, H, W, C) `x`: 2x2 windows, stride 2, VALID, computed by the
    C++ kernel (kernels/maxpool.cc), with its gradient (to the first maximum of a window, as TensorFlow's).
    Requires `load()` to succeed."""
    ops = load()

    @tf.custom_gradient
    def _pool(x):
        return ops.keras_norm_max_pool2x2(x), lambda dy: ops.keras_norm_max_pool2x2_grad(x, dy)

    return _pool(x)


def dropout_mask(shape, seed, rate):
    """tf.cast(tf.random.stateless_uniform(shape, seed) >= rate, tf.float32) * float32(1 / (1 - rate)), the mask
    of Keras's dropout, computed by the C++ kernel (kernels/dropout.cc) from TensorFlow's key and counter for
    `seed` (an int32 [2] tensor). Requires `load()` to succeed."""
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
    return load().keras_norm_dropout_mask(shape, key, counter, tf.raw_ops.StatelessRandomGetAlg(), rate=rate,
                                          scale=1 / (1 - rate))


def affine_transform(images, transforms, fill_value):
    """tf.raw_ops.ImageProjectiveTransformV3 with BILINEAR interpolation and CONSTANT fill, output shape = input
    shape, computed by the C++ kernel (kernels/affine.cc): float32 (N, H, W, C) `images`, (N or 1, 8) `transforms`.
    No gradient (it transforms data). Requires `load()` to succeed."""
    return load().keras_norm_affine_transform(images, tf.cast(transforms, tf.float32), tf.cast(fill_value, tf.float32))


def instruction_set():
    """The vector instructions the conv and rotation kernels pick at run time on this CPU: 'avx512' or 'baseline'
    (KERAS_NORM_CONV_ISA=baseline forces the latter)."""
    if os.environ.get("KERAS_NORM_CONV_ISA") == "baseline":
        return "baseline"
    return "avx512" if all(_cpu_has(f) for f in ("avx512f", "avx512vl", "avx512dq", "avx512bw")) else "baseline"
