"""The reconstruction as typed stages that hand their results forward.

    Reconstructor.prepare        -> stages.PreparedPhoto  (crop, alignment, landmarks, masks,
                                                           identity features)
    coarse.coarse_fit            -> stages.CoarseFit      (coefficients, the one render and
                                                           raster, visibility, figures)
    refine.refine                -> stages.Refinement     (fine albedo, lit colours, render,
                                                           figures)
    assemble.face_results        -> export.result.FaceResult
    FaceResult.save              -> files (export.writer)

`factory.build_components` builds every model a run needs once; `batch.run` reconstructs a
list of photos with skipping, failure isolation and a summary. The pipeline sits on top of
every other package and nothing imports it but scripts and benchmarks.

    >>> from facegcn_tf.pipeline import Reconstructor
    >>> Reconstructor.from_settings(refine_steps=50).reconstruct("me.jpg").save("out")
"""

from facegcn_tf.export.result import FaceResult
from facegcn_tf.pipeline.batch import (Interrupted, OutputError, RunSummary,
                                       interrupt_on_signals, output_names, resolve_inputs, run,
                                       scan_inputs)
from facegcn_tf.pipeline.reconstructor import Reconstructor
from facegcn_tf.pipeline.settings import Settings

__all__ = ["FaceResult", "Interrupted", "OutputError", "Reconstructor", "RunSummary",
           "Settings", "interrupt_on_signals", "output_names", "resolve_inputs", "run",
           "scan_inputs"]
