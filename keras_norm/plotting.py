"""matplotlib for files only: the Agg backend, set once here before pyplot is imported.

Every module that draws imports `plt` from here, so no figure ever needs a display (CI, servers, `nohup`).
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (pyplot must come after the backend is chosen)

__all__ = ["plt"]
