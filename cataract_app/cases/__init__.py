"""The case log in the window: recording, the review box, the Cases panel, review order and its keys."""
