import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import engine.compat  # noqa: E402,F401  (before anything imports torchvision)
