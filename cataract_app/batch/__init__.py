"""Grading many photographs in the app: the files chosen or dropped, the job off the GUI thread, its bar."""
