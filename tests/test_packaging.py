"""What a user installs: the extras pick a TensorFlow that has a wheel on each platform, and the package's
version, changelog and license agree."""

import configparser
import os
import unittest

from packaging.requirements import Requirement

import keras_norm
from tests.helpers import ROOT

PLATFORMS = {  # (platform_machine, sys_platform) as pip's markers see them
    "Linux x86-64": ("x86_64", "linux"), "Linux ARM": ("aarch64", "linux"),
    "macOS Apple silicon": ("arm64", "darwin"), "Windows": ("AMD64", "win32"),
}
# The TensorFlow package with a 2.21 wheel there (checked with pip download for CPython 3.10-3.13).
HAS_WHEEL = {"Linux x86-64": "tensorflow-cpu", "Linux ARM": "tensorflow", "macOS Apple silicon": "tensorflow",
             "Windows": "tensorflow-cpu"}


def setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    return parser


class PackagingTest(unittest.TestCase):
    def test_the_cpu_extra_installs_exactly_one_tensorflow_with_a_wheel_on_each_platform(self):
        extra = [Requirement(line) for line in setup_cfg()["options.extras_require"]["cpu"].strip().splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        for name, (machine, system) in PLATFORMS.items():
            with self.subTest(platform=name):
                env = {"platform_machine": machine, "sys_platform": system}
                chosen = [r.name for r in extra if r.marker is None or r.marker.evaluate(env)]
                self.assertEqual(chosen, [HAS_WHEEL[name]])

    def test_python_range_version_changelog_and_license_agree(self):
        options, metadata = setup_cfg()["options"], setup_cfg()["metadata"]
        self.assertEqual(options["python_requires"], ">=3.10,<3.14")
        with open(os.path.join(ROOT, "CHANGELOG.md"), encoding="utf-8") as f:
            self.assertIn(f"## {keras_norm.__version__}", f.read())
        with open(os.path.join(ROOT, "LICENSE"), encoding="utf-8") as f:
            self.assertTrue(f.read().startswith(f"{metadata['license']} License"))


if __name__ == "__main__":
    unittest.main()
