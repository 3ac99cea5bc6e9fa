"""The notebook runs from top to bottom (quick settings: one epoch on a few hundred images of the offline
sample) in a real Jupyter kernel, and is committed without outputs."""

import os
import unittest

from tests.helpers import ROOT

NOTEBOOK = os.path.join(ROOT, "notebooks", "keras_norm.ipynb")


class NotebookTest(unittest.TestCase):
    def test_committed_without_outputs(self):
        import nbformat

        notebook = nbformat.read(NOTEBOOK, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        self.assertGreater(len(code), 4)
        self.assertTrue(all(not c.outputs and c.execution_count is None for c in code))

    def test_runs_from_top_to_bottom(self):
        import nbformat
        from nbclient import NotebookClient

        notebook = nbformat.read(NOTEBOOK, as_version=4)
        env = dict(os.environ, KERAS_NORM_NOTEBOOK_QUICK="1", PYTHONPATH=ROOT)
        old = os.environ.copy()
        os.environ.update(env)  # the kernel inherits this process's environment
        try:
            NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
        text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
        self.assertIn("7,426 parameters", text)
        self.assertEqual(text.count("final test accuracy"), 3)
        self.assertIn("brightness + 0.3", text)
        errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
