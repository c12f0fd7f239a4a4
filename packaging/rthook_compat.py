# PyInstaller runtime hook: runs before the app's entry script in the frozen executable.
# engine.compat must run before torchvision is imported (timm and pytorch_grad_cam import
# it); doing it here makes the order hold for every code path, GUI or engine subcommand.
# It also imports torch first, which the entry point wants before PySide6 anyway.
import engine.compat  # noqa: F401
