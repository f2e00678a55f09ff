"""Masked and hard faces (issue #11.3): a weak MTCNN candidate confirmed by the dense
landmark model is reconstructed; a photo without a face still fails with one line."""

import numpy as np
import pytest

from facegcn_tf.data.preprocess import (DETECTED_BY_LANDMARKS, DETECTED_BY_MTCNN,
                                        FacePreprocessor)
from facegcn_tf.errors import NoFaceError


def test_clean_face_is_found_by_mtcnn(face_preprocessor, grace_hopper):
  face = face_preprocessor.prepare_image(grace_hopper, "grace_hopper")
  assert face.detected_by == DETECTED_BY_MTCNN
  assert face.detection.confidence >= 0.9 and face.landmark_presence >= 0.9


def test_masked_face_is_confirmed_by_dense_landmarks(face_preprocessor, grace_hopper,
                                                     masked_grace_hopper):
  preprocessor, drawn = face_preprocessor, masked_grace_hopper
  # MTCNN alone: no face at 0.9.
  with pytest.raises(NoFaceError):
    preprocessor.detector.most_confident(drawn.image)
  face = preprocessor.prepare_image(drawn.image, "masked")
  assert face.detected_by == DETECTED_BY_LANDMARKS
  # Its score comes from MTCNN's output stage in the candidate search; MTCNN's normal
  # cascade dropped the box earlier (its refinement stage scores masked faces low).
  assert face.detection.confidence >= preprocessor.fallback_confidence
  assert face.landmark_presence >= preprocessor.fallback_presence
  assert face.source_path == "masked"
  # It is the same face: the eyes (above the mask) land where the clean photo's do.
  clean = preprocessor.prepare_image(grace_hopper, "grace_hopper")
  eyes = slice(36, 48)
  clean_eyes = clean.aligned.transform.to_original(clean.landmarks68)[eyes]
  masked_eyes = face.aligned.transform.to_original(face.landmarks68)[eyes]
  ocular = np.linalg.norm(clean_eyes[:6].mean(0) - clean_eyes[6:].mean(0))
  assert np.abs(masked_eyes - clean_eyes).max() < 0.25 * ocular
  # Without the fallback the photo fails.
  strict = FacePreprocessor(preprocessor.template5, detector=preprocessor.detector,
                            landmarker=preprocessor.landmarker, fallback_confidence=1.0)
  with pytest.raises(NoFaceError):
    strict.prepare_image(drawn.image, "masked")


def test_photo_without_a_face_fails_with_one_line(face_preprocessor):
  preprocessor = face_preprocessor
  import skimage.data  # pylint: disable=import-outside-toplevel
  with pytest.raises(NoFaceError) as err:
    preprocessor.prepare_image(skimage.data.coffee(), "coffee.png")
  message = str(err.value)
  assert "\n" not in message and message.startswith("coffee.png: no face found")
  with pytest.raises(NoFaceError) as err:
    preprocessor.prepare_image(np.full((300, 300, 3), 128, np.uint8), "grey.png")
  assert "\n" not in str(err.value) and str(err.value).startswith("grey.png: no face found")
