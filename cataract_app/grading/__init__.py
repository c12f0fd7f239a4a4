"""The grading wing: the grade, its probabilities, the sub-label form and the teacher's answer."""
