"""Re-labelling the Segment dock's last result when its settings change.

:class:`SegmentRelabel` is mixed into :class:`~.segment_widget.SegmentWidget`.
The network outputs of each result are cached (``Result.patches``); a
change of threshold, minimum size or output mode re-labels them in the
worker process without running the network, and never overwrites hand edits.
"""

from __future__ import annotations

from ..worker.protocol import RelabelRequest
from . import _job, _notify, _review_data
from ._results import write_region


class SegmentRelabel:
    """Settings changes applied to the current result (a mixin)."""

    def _relabel(self):
        """Re-label the current image's result from cached probabilities (in the worker)."""
        result = self._result_for(self.image.value) if self.image.value is not None else None
        if result is None or not result.patches or self._run is not None:
            return
        params = self._params()
        if params == result.params:
            return
        if result.tracker.edited or _review_data.has_reviewed(result.layer):
            if result.warned_version != result.tracker.version:
                result.warned_version = result.tracker.version
                what = "hand edits" if result.tracker.edited else "objects marked reviewed"
                _notify.show_warning(
                    f"'{result.layer.name}' has {what}, so the new settings were not "
                    "applied to it. Press Run to write a new layer, or tick 'keep my edits' "
                    "to re-predict around your edits.")
            return
        if self._relabeling:
            self._relabel_pending = True
            return
        self._relabeling = True
        stamp = (result.tracker.version, result.generation)
        patches = list(result.patches)
        whole = len(patches) == 1 and patches[0][0].is_whole
        existing = result.layer.data
        inbox = self._inbox

        def done(outcome):  # In the worker client's thread: make ids unique there.
            values = measured = None
            if outcome.ok:
                try:
                    values = _job.offset_patches(outcome.value, existing, params, whole)
                    measured = [_job.review_measure(v, probs, info, region, params)
                                for (region, probs, info), v in zip(patches, values,
                                                                    strict=True)]
                except Exception as err:  # noqa: BLE001
                    outcome.error = err
            inbox.post(self._relabel_finished, result, stamp, params, patches, values,
                       measured, outcome.error)

        self.client.submit(RelabelRequest([(probs, info) for _, probs, info in patches],
                                          params), on_done=done)

    def _relabel_finished(self, result, stamp, params, patches, values, measured, error):
        try:
            if error is not None:
                _notify.show_error(_job.describe_error(error))
            elif values is not None:
                self._apply_relabel(result, stamp, params,
                                    [(p[0], v) for p, v in zip(patches, values, strict=True)],
                                    measured)
        finally:
            self._relabel_done()

    def _apply_relabel(self, result, stamp, params, values, measured):
        if (result.tracker.version, result.generation) != stamp:
            return  # Edited, or rewritten by a run, while re-labelling: never overwrite.
        if result.layer not in self._viewer.layers:
            return
        if self._run is not None and self._run.target is result:
            return  # A run is about to rewrite this layer with the same settings.
        for (region, labels), review in zip(values, measured, strict=True):
            write_region(result.layer, result.tracker, region, labels)
            _review_data.update(result, review, params)
        result.params = params
        if self.review.result is result or self.review.result is None:
            self.review.show(result)

    def _relabel_done(self):
        self._relabeling = False
        if self._relabel_pending:
            self._relabel_pending = False
            self._relabel()
