"""CoeffLayout and MorphableModel: slicing, validation, reference shape/albedo."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf import morphable
from facegcn_tf.morphable.model import BFM_LAYOUT, CoeffLayout, MorphableModel


def test_bfm_layout_matches_deep3dface_split():
  # Deep3DFace / GCN split_bfm09_coeff: id [:80], exp [80:144], tex [144:224],
  # angles [224:227], gamma [227:254], trans [254:257].
  assert BFM_LAYOUT.total == 257
  expected = {"id": (0, 80), "exp": (80, 144), "tex": (144, 224), "angles": (224, 227),
              "gamma": (227, 254), "trans": (254, 257)}
  assert {k: (s.start, s.stop) for k, s in BFM_LAYOUT.slices().items()} == expected
  assert list(BFM_LAYOUT.slices()) == list(morphable.COEFF_NAMES)


def test_fixed_parts_cannot_be_set():
  with pytest.raises(TypeError):
    CoeffLayout(1, 2, 3, n_angles=6)  # pylint: disable=unexpected-keyword-arg
  with pytest.raises(ValueError, match="n_exp"):
    CoeffLayout(1, -2, 3)


def test_split_numpy_and_tf_agree_and_reassemble():
  layout = CoeffLayout(5, 4, 3)
  assert layout.total == 5 + 4 + 3 + 3 + 27 + 3
  coeffs = np.arange(2 * layout.total, dtype=np.float32).reshape(2, layout.total)
  parts_np = layout.split(coeffs)
  parts_tf = layout.split(tf.constant(coeffs))
  assert [p.shape[-1] for p in parts_np.values()] == [5, 4, 3, 3, 27, 3]
  for name in morphable.COEFF_NAMES:
    assert isinstance(parts_tf[name], tf.Tensor)
    np.testing.assert_array_equal(parts_tf[name].numpy(), parts_np[name])
  np.testing.assert_array_equal(np.concatenate(list(parts_np.values()), axis=-1), coeffs)
  np.testing.assert_array_equal(parts_np["angles"][1], coeffs[1, 12:15])


def test_split_inside_tf_function_with_unknown_batch():
  layout = CoeffLayout(2, 2, 2)

  @tf.function(input_signature=[tf.TensorSpec([None, layout.total], tf.float32)])
  def gamma_sum(c):
    return tf.reduce_sum(layout.split(c)["gamma"], axis=-1)

  coeffs = np.zeros((3, layout.total), np.float32)
  coeffs[:, 9:36] = 1.0  # gamma = after 2+2+2+3
  np.testing.assert_allclose(gamma_sum(coeffs).numpy(), [27.0, 27.0, 27.0])


def test_split_with_unknown_rank():
  layout = CoeffLayout(1, 1, 1)

  @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
  def trans(c):
    return layout.split(c)["trans"]

  coeffs = np.arange(2 * layout.total, dtype=np.float32).reshape(2, -1)
  np.testing.assert_array_equal(trans(coeffs).numpy(), coeffs[:, -3:])


def test_split_rejects_wrong_length():
  with pytest.raises(ValueError, match="257"):
    BFM_LAYOUT.split(np.zeros((2, 256)))
  with pytest.raises(ValueError, match="257"):
    BFM_LAYOUT.split(tf.zeros([2, 258]))


def tiny_model(**overrides):
  """Two triangles in the z = 0 plane, 1 identity mode, 2 expression modes, 1 texture mode."""
  v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
  fields = dict(
      name="tiny", mean_shape=v,
      id_basis=np.ones((1, 4, 3)), exp_basis=np.stack([np.eye(4, 3), 2 * np.eye(4, 3)]),
      mean_albedo=np.full((4, 3), 0.5), albedo_basis=np.full((1, 4, 3), 0.25),
      triangles=np.array([[0, 1, 2], [0, 2, 3]]), uv=v[:, :2],
      triangle_uv=np.array([[0, 1, 2], [0, 2, 3]]), landmarks68=np.zeros(68, np.int64),
      skin_mask=np.ones(4, bool), symmetry_pairs=np.array([[1, 0], [2, 3]]),
      layout=CoeffLayout(1, 2, 1))
  fields.update(overrides)
  return MorphableModel(**fields)


def test_model_coerces_dtypes_and_freezes_arrays():
  model = tiny_model()
  assert model.mean_shape.dtype == np.float32 and model.triangles.dtype == np.int32
  assert model.landmarks68.dtype == np.int32 and model.skin_mask.dtype == bool
  assert model.num_vertices == 4 and model.num_triangles == 2
  assert repr(model).startswith("MorphableModel(name='tiny', vertices=4, triangles=2")
  with pytest.raises(ValueError):
    model.mean_shape[0, 0] = 5.0
  with pytest.raises(dataclasses.FrozenInstanceError):
    model.name = "other"


def test_template5_is_the_alignment_template_of_the_mean_shape_cached():
  from facegcn_tf.data import alignment
  landmarks = np.full(68, 3)
  landmarks[36:42], landmarks[42:48], landmarks[48:68] = 0, 1, 2
  model = tiny_model(landmarks68=landmarks)
  template = model.template5
  np.testing.assert_array_equal(
      template, alignment.five_point_template(model.mean_shape[model.landmarks68]))
  assert template.shape == (5, 3) and model.template5 is template
  with pytest.raises(ValueError):
    template[0, 0] = 1.0
  with pytest.raises(ValueError, match="mirrored"):
    tiny_model().template5  # pylint: disable=expression-not-assigned


def test_shape_and_albedo_reference_combinations():
  model = tiny_model()
  np.testing.assert_array_equal(model.shape(), model.mean_shape)
  s = model.shape(id_coeffs=[2.0], exp_coeffs=[1.0, -1.0])
  expected = model.mean_shape + 2.0 - np.eye(4, 3)
  np.testing.assert_allclose(s, expected)
  batch = model.shape(id_coeffs=[[0.0], [1.0]])
  assert batch.shape == (2, 4, 3)
  np.testing.assert_allclose(batch[1], model.mean_shape + 1.0)
  np.testing.assert_allclose(model.albedo([1.0]), np.full((4, 3), 0.75))
  np.testing.assert_allclose(model.albedo([4.0]), np.ones((4, 3)))  # clipped
  np.testing.assert_allclose(model.albedo([4.0], clip=False), np.full((4, 3), 1.5))


def test_shape_rejects_wrong_coefficient_count():
  with pytest.raises(ValueError, match="identity"):
    tiny_model().shape(id_coeffs=[1.0, 2.0])
  with pytest.raises(ValueError, match="texture"):
    tiny_model().albedo(np.zeros(3))


@pytest.mark.parametrize("overrides, message", [
    (dict(id_basis=np.ones((2, 4, 3))), "id_basis"),
    (dict(triangles=np.array([[0, 1, 4], [0, 2, 3]])), "triangles"),
    (dict(triangle_uv=np.array([[0, 1, 9], [0, 2, 3]])), "triangle_uv"),
    (dict(landmarks68=np.zeros(5, np.int32)), "landmarks68"),
    (dict(skin_mask=np.ones(3, bool)), "skin_mask"),
    (dict(mean_albedo=np.full((4, 3), 1.5)), "mean_albedo"),
    (dict(uv=np.full((4, 2), 2.0)), "uv"),
    (dict(symmetry_pairs=np.array([[0, 7]])), "symmetry_pairs"),
    (dict(exp_names=("a",)), "exp_names"),
    (dict(mean_shape=np.full((4, 3), np.nan)), "non-finite"),
])
def test_model_rejects_inconsistent_fields(overrides, message):
  with pytest.raises(ValueError, match=message):
    tiny_model(**overrides)


def test_load_model_rejects_unknown_name():
  with pytest.raises(ValueError, match="ict_coarse"):
    morphable.load_model("flame")


def test_ict_is_fitted_on_ict_coarse_and_other_models_on_themselves():
  assert morphable.fitting_model_name("ict") == "ict_coarse"
  assert morphable.fitting_model_name("ict_coarse") is None
  assert morphable.fitting_model_name("bfm") is None
  assert morphable.load_fitting_model("bfm", "/nonexistent") is None   # nothing is read
  coarse = morphable.load_fitting_model("ict")
  assert coarse.name == "ict_coarse" and coarse.layout == morphable.load_model("ict_coarse").layout
  with pytest.raises(ValueError, match="ict_coarse"):
    morphable.fitting_model_name("flame")
