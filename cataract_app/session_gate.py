"""The grading session's lens circle and input gate: which circle a request carries, which answers are held back.

Mixed into cataract_app.session.GradingSession (plain Python, no Qt). The circle is the
finder's (from the latest checked answer) or the clinician's (`set_lens`), which every later
request of the image carries until `reset_lens`. An answer whose input gate found problems
not yet acknowledged is held back; `grade_anyway` acknowledges them and shows it.
"""

from __future__ import annotations

from engine.choices import STUDENT, TEACHER
from engine.inputs import FOUND, GIVEN, InputCheck
from engine.request import GradeRequest, lens_circle
from engine.results import GradeResult
from engine.roi import Circle

NOT_FOUND = "not_found"  # lens_changed's source when an answer came with no lens: the circle is the clinician's to place


class LensGate:
    """The lens and gate part of GradingSession; the session sets the attributes and notices it uses."""

    lens: Circle | None
    found: Circle | None
    held: dict[str, tuple[GradeRequest, GradeResult]]
    acknowledged: frozenset[str]

    def set_lens(self, circle: object) -> None:
        """The clinician placed the lens circle (a Circle or cx, cy, r in pixels of the photograph): grade again with it."""
        lens = lens_circle(circle)
        if lens == self.lens or self.image is None:
            return
        self.lens = lens
        self.lens_changed.emit(lens, GIVEN)
        self._regrade()

    def reset_lens(self) -> bool:
        """Back to the finder's circle (the image is graded again); False when no circle was placed."""
        if self.lens is None:
            return False
        self.lens = None
        self.lens_changed.emit(self.found, FOUND if self.found is not None else NOT_FOUND)
        self._regrade()
        return True

    def grade_anyway(self) -> bool:
        """Show the answers the input gate held back; their problems count as acknowledged for this image."""
        if not self.held:
            return False
        held, self.held = self.held, {}
        for _request, result in held.values():
            self.acknowledged |= frozenset(result.input.codes)
        for role in (STUDENT, TEACHER):
            if role in held:
                self.accept(*held[role])
        return True

    @property
    def refused(self) -> InputCheck | None:
        """The input gate's check of a held answer (None: nothing is held back)."""
        for role in (STUDENT, TEACHER):
            if role in self.held:
                return self.held[role][1].input
        return None

    def graded_anyway(self, result: GradeResult) -> bool:
        """The answer had input problems and is shown because the clinician chose to grade anyway."""
        return result.input is not None and result.input.ok is False and not self._must_hold(result)

    def _must_hold(self, result: GradeResult) -> bool:
        check = result.input
        return check is not None and check.ok is False and not set(check.codes) <= self.acknowledged

    def _show_lens(self, result: GradeResult) -> None:
        check = result.input
        if check is None:
            return
        if check.source == FOUND:
            self.found = check.circle
        if self.lens is None:
            found = check.source == FOUND and check.circle is not None
            self.lens_changed.emit(check.circle if found else None, FOUND if found else NOT_FOUND)

    def _forget_lens(self) -> None:
        self.lens = self.found = None
        self.held, self.acknowledged = {}, frozenset()
        self.lens_changed.emit(None, None)

