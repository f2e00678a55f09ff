"""A functional Adam update on plain tensors.

Why not `keras.optimizers.Adam`: Keras optimizers keep their moments in slot
variables bound to particular `tf.Variable` objects and take one learning rate
per optimizer. The fitter wants the whole optimisation state as tensors that a
`tf.function` step takes and returns (one trace serves every batch of the same
size, no variables to re-create per call), and a different step size per
coefficient group (radians, decimetres, unit-variance coefficients). The update
itself is Kingma & Ba's, with bias correction.
"""

from typing import Tuple

import tensorflow as tf

BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-8


def adam_update(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor,
                step: tf.Tensor, learning_rate: tf.Tensor,
                beta1: float = BETA1, beta2: float = BETA2,
                epsilon: float = EPSILON) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """One Adam step.

  Args:
    param, grad, m, v: tensors of one shape (parameter, its gradient, first and
      second moment estimates).
    step: scalar float, the 1-based step number (for bias correction).
    learning_rate: scalar float.

  Returns:
    (new param, new m, new v).
  """
  m = beta1 * m + (1.0 - beta1) * grad
  v = beta2 * v + (1.0 - beta2) * tf.square(grad)
  m_hat = m / (1.0 - tf.pow(beta1, step))
  v_hat = v / (1.0 - tf.pow(beta2, step))
  return param - learning_rate * m_hat / (tf.sqrt(v_hat) + epsilon), m, v
