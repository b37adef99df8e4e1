"""Flax layers with the Keras defaults the thesis models were built with.

Keras initialises kernels glorot-uniform and biases to zero (Flax: lecun-normal kernels). Flax's BatchNorm
`momentum` has the Keras meaning (running = momentum * running + (1 - momentum) * batch). The factories below are
`functools.partial`s of the plain Flax classes, so every layer is still an `nn.Conv` / `nn.Dense` /
`nn.BatchNorm` and FLOPs and parameters can be attributed per layer.
"""

import functools

import flax.linen as nn

glorot_uniform = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros

Conv = functools.partial(nn.Conv, kernel_init=glorot_uniform, bias_init=zeros)
Dense = functools.partial(nn.Dense, kernel_init=glorot_uniform, bias_init=zeros)

# BatchNorm constants of the two Keras applications.
MOBILENET_BN = dict(momentum=0.999, epsilon=1e-3)
RESNET_BN = dict(momentum=0.99, epsilon=1.001e-5)


def batch_norm(train: bool, bn: dict, dtype, param_dtype, name: str, axis_name: str | None = None) -> nn.BatchNorm:
  """A Keras-configured BatchNorm; statistics and params stay float32 (`param_dtype`).

  Args:
    train: batch statistics (and running-average updates) when True, running averages otherwise.
    bn: `MOBILENET_BN` or `RESNET_BN` (momentum and epsilon).
    dtype: compute dtype of the output.
    param_dtype: dtype of scale and bias.
    name: layer name.
    axis_name: a mapped axis (e.g. the time axis of `nn.vmap`) whose elements share the batch statistics.
  """
  return nn.BatchNorm(use_running_average=not train, dtype=dtype, param_dtype=param_dtype, name=name,
                      axis_name=axis_name, **bn)
