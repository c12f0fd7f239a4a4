"""PySide6 desktop app: open a slit-lamp photograph, read the cortical cataract grade.

The app holds no model logic: every prediction comes from `engine.infer.Grader`.
"""

ORGANISATION = "CataractGrader"
APPLICATION = "cataract-grader"
DISPLAY_NAME = "Cataract Grader"
DISCLAIMER = (
    "Cataract Grader is a decision aid for research and training. Its grades and heat maps "
    "do not replace an examination by a qualified clinician."
)
