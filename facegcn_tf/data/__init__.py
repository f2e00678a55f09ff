"""Photo -> model inputs: loading, detection, alignment, landmarks, masks, datasets.

Modules (each one job; none imports ``morphable``, ``networks`` or later stages):

* ``image_io``: any photo file -> full-resolution ``[H, W, 3] uint8`` RGB.
* ``detection``: MTCNN faces with 5 points (``FaceDetector``).
* ``alignment``: Deep3DFace-style 5-point alignment to 224x224 and back.
* ``landmark_indices``: MediaPipe region loops, 468 -> iBUG-68 table, flips.
* ``dense_landmarks``: MediaPipe 468-point landmarks (TFLite).
* ``face_mask``: region / skin / face masks without a parsing network.
* ``preprocess``: the whole chain for one photo (``FacePreprocessor``).
* ``tfrecords``, ``dataset``, ``augment``: sharded TFRecords, writer, reader.
* ``examples``: the bundled public-domain example photos (arrays or files).
"""
