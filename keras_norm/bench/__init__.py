"""The training-speed benchmark (`--bench`): the speed engine measured against Keras's own layers and against
a comparison path, with the parts of the engine timed one by one.

* options.py: `BenchOptions`, the benchmark's flags, validated before TensorFlow is imported;
* paths.py: the training paths it compares (options of `engine.accelerate`, of the input pipeline and of the
  training loop);
* steps.py: training steps timed inside `fit`, interleaved (the entry point, `run`);
* conv.py: per-layer 3x3 convolution times; runs.py: whole training runs; profile.py: where a step's time goes.

It sits above the training code (it drives `train` and `model.fit`) and the engine; nothing below imports it.
"""
