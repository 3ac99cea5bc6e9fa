"""Shifts of the input: transforms of digits on the [0, 1] pixel scale (the shift suite's, and the demo's).

Contrast scales every pixel towards the black background, brightness adds to every pixel, Gaussian noise adds
a fixed-seed draw; rotation and translation move the digit; inversion swaps ink and paper. Every result is
clipped back to [0, 1].
"""

import numpy as np
from scipy import ndimage

NOISE_SEED = 0


def rotate(x, degrees):
    return ndimage.rotate(x, degrees, axes=(1, 2), reshape=False, order=1, mode="constant", cval=0.0)


def translate(x, pixels):
    return ndimage.shift(x, (0, pixels, pixels), order=0, mode="constant", cval=0.0)


def noise(x, sigma, seed=NOISE_SEED):
    return x + np.random.default_rng(seed).normal(0.0, sigma, x.shape).astype(np.float32)


# The severity that leaves the images as they are (the clean point of each curve), and the axis label.
CLEAN = {"contrast": (1.0, "contrast factor (1 = clean)"), "brightness": (0.0, "added brightness (0 = clean)"),
         "gaussian_noise": (0.0, "noise std (0 = clean)"), "rotation": (0.0, "degrees (0 = clean)"),
         "translation": (0.0, "pixels right and down (0 = clean)"), "inverted": (0.0, "inverted (0 = clean)")}
# name -> (severities, function of ([0, 1] images, severity) -> images)
TRANSFORMS = {
    "contrast": ((0.5, 0.25), lambda x, s: x * s),
    "brightness": ((0.2, 0.4), lambda x, s: x + s),
    "gaussian_noise": ((0.1, 0.3), noise),
    "rotation": ((15, 30), rotate),
    "translation": ((2, 4), translate),
    "inverted": ((1,), lambda x, s: 1.0 - x),
}


def transformed(images, name, severity):
    """The test images under one transform, clipped back to [0, 1]."""
    return np.clip(TRANSFORMS[name][1](images, severity), 0.0, 1.0).astype(np.float32)


def shifted(image, contrast=1.0, brightness=0.0, noise_std=0.0, seed=NOISE_SEED):
    """One or more [0, 1] images under contrast, then brightness, then Gaussian noise (the demo's sliders), clipped
    to [0, 1]; each step is the shift suite's transform of that name."""
    x = np.asarray(image, np.float32) * contrast + brightness
    if noise_std:
        x = noise(x, noise_std, seed)
    return np.clip(x, 0.0, 1.0).astype(np.float32)
