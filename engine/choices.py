"""The named choices the CLI, the GUI's forms and the engine share, in a module without torch.

`cataract-grade --help`, argument errors and the app's forms read them without paying
for a torch import; the modules that act on a choice import its list from here.
"""

from __future__ import annotations

STUDENT, TEACHER = "student", "teacher"  # who answers a grade, and a bundle's role
ROLES = (STUDENT, TEACHER)
JOBS = ("teacher", "student", "kd")  # what `train` makes: a fusion teacher, a plain student, a distilled student
FUSIONS = ("concat", "mlp", "coattn", "none")  # a teacher's fusion; none: image only, mlp: sub-labels only
TOKEN_LAYOUTS = ("grid", "zones")  # a fusion teacher's image tokens: a pooled grid, or TKD-Net's zones
DISTANCES = ("smooth_l1", "cosine")  # how feature and token distillation compare student and teacher
OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "plateau")  # cosine decay over --epochs, or constant and cut when validation stalls
AUGMENTS = ("realistic", "basic", "none")  # training augmentation (engine.data.transforms.Augment.named)
DEVICES = ("auto", "cpu", "cuda", "mps")
AMPS = ("auto", "bf16", "fp16", "off")  # training's mixed precision (engine.precision)  # "cuda:N" picks one GPU
CAM_METHODS = ("gradcam", "hirescam", "gradcam++", "layercam", "eigencam")
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "cividis")  # heat-map colours
COLORBLIND_SAFE = ("cividis", "viridis")
CENTRE, LENS = "centre", "lens"  # what a model sees: the centred square of the short side, or a square around the lens
CROPS = (LENS, CENTRE)
