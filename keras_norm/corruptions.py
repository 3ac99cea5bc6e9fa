"""MNIST-C (Mu & Gilmer 2019): the benchmark's 15 corruptions of the MNIST test set, at the severity it uses.

Every corruption maps digits on the [0, 1] scale, shaped (N, 28, 28), to digits on the same scale and shape, in
the same order, each image from its own random draw: a numpy Generator seeded by (seed, corruption, the image's
position). It never sees a label, and image i of the output depends on image i of the input alone, so each
corrupted digit keeps its label, and the first n images of a corrupted set are the corrupted first n images.

The definitions and severities are those of the benchmark's published code (github.com/google-research/mnist-c,
`corruptions.py`, each function at its default severity), built on scikit-image and SciPy where they have the
operation (Poisson and salt-and-pepper noise, Gaussian filters, affine warps, Canny edges). Two differ in how, not
what: motion blur there is ImageMagick's MotionBlurImage (radius 10, sigma 3, a random angle in [-45, 45] degrees),
here the same one-sided Gaussian line kernel applied with SciPy; brightness there goes through HSV, whose value
channel of a grey pixel is the pixel itself, so here it is `x + 0.5` directly. Because the draws differ from the
benchmark's, these are MNIST-C's corruptions, not its published files: errors are comparable in kind, not digit
for digit.
"""

import zlib

import numpy as np
from scipy import ndimage
from skimage import feature, filters, transform, util

SIZE = 28
CENTER = (SIZE - 1) / 2.0  # the benchmark's affine maps keep pixel (13.5, 13.5) fixed
SEED = 0


def _each(images, rngs, fn):
    """fn(image, its Generator) for every image."""
    return np.stack([fn(x, r) for x, r in zip(images, rngs)]) if len(images) else images.copy()


def _gaussian(images, sigma):
    """Each image blurred alone (scikit-image's filter, the benchmark's: edges repeated, 4 sigma)."""
    return filters.gaussian(images, sigma=(0, sigma, sigma), mode="nearest", preserve_range=True)


def _warp(images, matrices, moves=None):
    """Each image through its affine map: output pixel p reads input pixel centre + m (p - centre) + move, in
    (column, row) coordinates; bilinear, black outside (scikit-image's `warp`)."""
    moves = np.zeros((len(images), 2)) if moves is None else moves

    def one(x, m, move):
        full = np.eye(3)
        full[:2, :2], full[:2, 2] = m, CENTER - m @ np.array([CENTER, CENTER]) + move
        return transform.warp(x, transform.AffineTransform(matrix=full), order=1, mode="constant", cval=0.0)
    return np.stack([one(*a) for a in zip(images, matrices, moves)]) if len(images) else images.copy()


def _signs(rngs, per_image=1):
    """A random direction (+1 or -1) per image (`per_image` of them each)."""
    return np.array([r.choice([-1.0, 1.0], size=per_image) for r in rngs]).reshape(len(rngs), per_image)


def shot_noise(images, rngs):
    """Poisson noise: each pixel a Poisson count at 3 x its value, divided by 3."""
    return _each(images, rngs, lambda x, r: r.poisson(x * 3.0) / 3.0)


def impulse_noise(images, rngs):
    """Salt and pepper on 17% of the pixels (scikit-image's `random_noise`)."""
    return _each(images, rngs, lambda x, r: util.random_noise(x, mode="s&p", amount=0.17, rng=r))


def glass_blur(images, rngs, sigma=0.7, delta=1, iterations=2):
    """Blur, quantize to 8 bits, swap pixels with a random neighbour (each position in turn, with probability
    1/2, an offset in {-1, 0} per axis), blur again. The swaps run over all images at once, each with its own
    draws."""
    x = np.floor(_gaussian(images, sigma) * 255).astype(np.uint8)
    shape = (iterations, SIZE - 2 * delta, SIZE - 2 * delta)
    draws = [(r.random(shape) < 0.5, r.integers(-delta, delta, size=shape + (2,))) for r in rngs]
    swaps = np.stack([d for d, _ in draws]) if draws else np.zeros((0,) + shape, bool)
    offsets = np.stack([o for _, o in draws]) if draws else np.zeros((0,) + shape + (2,), int)
    for it in range(iterations):
        for h in range(SIZE - delta, delta, -1):
            for w in range(SIZE - delta, delta, -1):
                at = (it, h - delta - 1, w - delta - 1)
                who = np.flatnonzero(swaps[(slice(None),) + at])
                dy, dx = offsets[(who,) + at].T
                here, there = x[who, h, w], x[who, h + dy, w + dx]
                x[who, h, w], x[who, h + dy, w + dx] = there, here
    return _gaussian(x / 255.0, sigma)


def motion_kernel(degrees, radius=10, sigma=3.0):
    """A one-sided line of Gaussian weights (exp(-i^2 / 2 sigma^2), i = 0..radius) at `degrees`, summing to 1, drawn
    on a (2 radius + 1)^2 grid with bilinear splatting: what ImageMagick's motion blur averages along."""
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1))
    weights = np.exp(-np.arange(radius + 1) ** 2 / (2 * sigma ** 2))
    for i, weight in enumerate(weights):
        r, c = radius + i * np.sin(np.radians(degrees)), radius + i * np.cos(np.radians(degrees))
        r0, c0 = int(np.floor(r)), int(np.floor(c))
        for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
            share = (1 - abs(r - r0 - dr)) * (1 - abs(c - c0 - dc))
            if 0 <= r0 + dr < kernel.shape[0] and 0 <= c0 + dc < kernel.shape[1]:
                kernel[r0 + dr, c0 + dc] += weight * share
    return kernel / kernel.sum()


def motion_blur(images, rngs):
    """Motion blur: radius 10, sigma 3, each image at its own angle in [-45, 45] degrees."""
    return _each(images, rngs, lambda x, r: ndimage.correlate(x, motion_kernel(r.uniform(-45, 45)), mode="constant"))


def shear(images, rngs):
    """Horizontal shear of 0.4 rad (either way at random) about the centre."""
    c = 0.4 * _signs(rngs)[:, 0]
    return _warp(images, [np.array([[1.0, -np.sin(s)], [0.0, np.cos(s)]]) for s in c])


def scale(images, rngs):
    """The digit shrunk to 70% about the centre."""
    return _warp(images, [np.eye(2) / 0.7] * len(images))


def rotate(images, rngs):
    """Rotation by 0.4 rad (23 degrees; either way at random) about the centre."""
    c = 0.4 * _signs(rngs)[:, 0]
    return _warp(images, [np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) for a in c])


def brightness(images, rngs):
    """Brightness + 0.5 (the benchmark's HSV value + 0.5; a grey pixel's value is the pixel)."""
    return images + 0.5


def translate(images, rngs):
    """The digit moved 3 pixels along each axis, each direction at random."""
    return _warp(images, [np.eye(2)] * len(images), 3.0 * _signs(rngs, 2))


def stripe(images, rngs):
    """The 7 columns at each side inverted."""
    x = images.copy()
    x[:, :, :7], x[:, :, 21:] = 1.0 - x[:, :, :7], 1.0 - x[:, :, 21:]
    return x


def plasma_fractal(rng, size=256, decay=1.4):
    """A diamond-square height map in [0, 1] (the benchmark's fog), `size` a power of two."""
    maps = np.zeros((1, size, size))
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled(square)
        centres, corners = maps[:, half:size:step, half:size:step], maps[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = wibbled(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = wibbled(top)
        step, wibble = half, wibble / decay
    maps = maps[0] - maps.min()
    return maps / maps.max()


def fog(images, rngs, strength=3.0):
    """A fractal haze (3 x a plasma map's corner) added, then scaled back so the brightest ink keeps its level."""
    def one(x, r):
        return (x + strength * plasma_fractal(r)[:SIZE, :SIZE]) * x.max() / (x.max() + strength)
    return _each(images, rngs, one)


def spatter(images, rngs):
    """Grey mud drops: blurred Gaussian noise thresholded into blobs, their soft mask blended in at grey 63/255."""
    liquid = _gaussian(_each(images, rngs, lambda x, r: r.normal(0.65, 0.3, x.shape)), 1.0)
    liquid[liquid < 0.65] = 0
    mask = _gaussian((liquid > 0.65).astype(np.float64), 1.5)
    mask[mask < 0.8] = 0
    return images * (1 - mask) + 63 / 255 * mask


def line(c0, r0, c1, r1):
    """A soft line from (column c0, row r0) to (c1, r1): intensity log(1 - d / 2.3) + 1 at row distance d, clipped
    to [0, 1], nothing outside the columns it spans (the benchmark's `line_from_points`)."""
    if c1 == c0:
        return np.zeros((SIZE, SIZE))
    cols, rows = np.meshgrid(np.arange(SIZE, dtype=float), np.arange(SIZE, dtype=float), sparse=True)
    d = np.clip(np.abs(rows - ((r1 - r0) / (c1 - c0) * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    out = np.clip(np.log(1 - d / 2.3) + 1, 0, 1) * np.ones((SIZE, SIZE))
    out[:, :int(np.floor(c0))] = 0
    out[:, int(np.ceil(c1)):] = 0
    return out


def dotted_line(images, rngs):
    """A line across the digit between random rows at each side, drawn in 2-pixel dashes."""
    dashes = (np.arange(SIZE) // 2) % 2 == 1  # columns 0-1 off, 2-3 on, ...

    def one(x, r):
        r0, r1 = r.integers(0, SIZE - 1, size=2)
        return x + line(0, r0, SIZE - 1, r1) * dashes
    return _each(images, rngs, one)


def zigzag_lines(r0, r1, a=2.0, b=2.0, c0=2, c1=25):
    """The benchmark's zigzag from (c0, r0) towards (c1, r1): segments of length `a` alternating `b` above and below."""
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    points = [(0.0, 0.0)]
    for i in range(int((d - a) // (2 * a)) + 1):
        points.append(((2 * i + 1) * a, (-1) ** i * b))
    whole = 2 * a * (d // (2 * a))
    if d != whole:
        points.append((d, points[-1][1] / (2 * (d - whole))))
    cs, rs = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.array(points).T
    return [(cs[i - 1] + c0, rs[i - 1] + r0, cs[i] + c0, rs[i] + r0) for i in range(1, len(points))]


def zigzag(images, rngs):
    """A zigzag line across the digit at a random height and slope."""
    def one(x, r):
        r0 = r.integers(0, SIZE - 1)
        for segment in zigzag_lines(r0, r0 + r.integers(-5, 5)):
            x = np.clip(x + line(*segment), 0, 1)
        return x
    return _each(images, rngs, one)


def canny_edges(images, rngs):
    """The digit's Canny edges (scikit-image's detector, sigma 1), white on black."""
    return _each(images, rngs, lambda x, r: feature.canny(x).astype(np.float64))


# The benchmark's order.
CORRUPTIONS = {fn.__name__: fn for fn in (
    shot_noise, impulse_noise, glass_blur, motion_blur, shear, scale, rotate, brightness, translate, stripe, fog,
    spatter, dotted_line, zigzag, canny_edges)}


def corrupted(images, name, seed=SEED):
    """The [0, 1] digits `images` (N, 28, 28) under corruption `name`, clipped to [0, 1], float32. Image i draws
    from its own Generator, seeded by (seed, name, i): the same images, name and seed give the same set."""
    key = zlib.crc32(name.encode())
    rngs = [np.random.default_rng([seed, key, i]) for i in range(len(images))]
    x = np.asarray(images, dtype=np.float64)
    return np.clip(CORRUPTIONS[name](x, rngs), 0.0, 1.0).astype(np.float32)
