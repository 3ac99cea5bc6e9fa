"""Which epoch is exported: the highest validation accuracy, ties broken by the lower validation data loss."""

import os
import tempfile
import unittest

from keras_norm import evaluate
from keras_norm.callbacks import ValidationBestCheckpoint


def row(epoch, acc, xent):
    return {"epoch": epoch, "val_accuracy": acc, "val_xent": xent}


# The offline sample's case: epochs 11 and 20 reach the same validation accuracy, 20 with a much lower loss.
HISTORY = [row(1, 0.90, 0.40), row(11, 0.966, 0.12), row(15, 0.95, 0.10), row(20, 0.966, 0.05)]


class SelectionTest(unittest.TestCase):
    def test_a_tie_in_accuracy_goes_to_the_lower_validation_loss(self):
        self.assertEqual(evaluate.best_epoch(HISTORY), 3)
        self.assertEqual(evaluate.best_epoch(HISTORY[:3]), 1)  # accuracy first: epoch 15's lower loss does not win
        reason = evaluate.selection_reason(HISTORY, 3)
        self.assertIn("epoch 20", reason)
        self.assertIn("tied with epoch 11", reason)
        self.assertEqual(evaluate.selection_reason(HISTORY, 1), "epoch 11 (validation accuracy 0.9660, the highest"
                                                               "; tied with epoch 20, it has the lowest validation "
                                                               "data loss (0.1200))")

    def test_the_checkpoint_saves_exactly_the_epochs_that_become_the_best(self):
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = ValidationBestCheckpoint(os.path.join(tmp, "best.weights.h5"))
            saved = [r["epoch"] for r in HISTORY if checkpoint._should_save_model(r["epoch"] - 1, None, r, "")]
            self.assertEqual(saved, [1, 11, 20])
            resumed = ValidationBestCheckpoint(os.path.join(tmp, "best.weights.h5"), seen=HISTORY[:2])
            self.assertFalse(resumed._should_save_model(2, None, row(12, 0.966, 0.2), ""))  # no better than 11
            self.assertTrue(resumed._should_save_model(2, None, row(12, 0.966, 0.1), ""))


if __name__ == "__main__":
    unittest.main()
