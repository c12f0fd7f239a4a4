"""Stand-ins for the GradingSession's grading backend and case service: they only record what they are asked."""


class Backend:
    """Records the images read and the requests submitted; grades nothing (tests answer by hand)."""

    def __init__(self):
        self.reads, self.requests = [], []

    def read(self, path):
        self.reads.append(path)

    def submit(self, image, request, source):
        self.requests.append(request)

    def supersede(self):
        pass


class Cases:
    """Records every case-log request the session makes."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))

    def named(self, name):
        return [c[1:] for c in self.calls if c[0] == name]
