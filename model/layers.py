"""Keras layers for the two SqueezeNet blocks that stock Keras / hls4ml do not express exactly.

- ``MaxPool2DCeil``: Caffe's ceil-mode max-pool without padding. Keras' VALID pooling drops
  the last, partial window and SAME pooling pads on both sides; Caffe keeps the partial
  window at the bottom/right edge and takes the maximum of the pixels it does cover.
- ``FixedGlobalAvgPool``: the global average pool that ends the network, rounded onto the
  logit grid the hardware produces (AP_RND, AP_SAT, unsigned), output shape (batch, C).

Both are registered under the package ``sqz``; ``hls.hls4ml_backend.extensions`` teaches hls4ml to
convert them. The exact integer definitions are ``model.golden.maxpool_ceil`` and
``model.golden.global_avgpool``.
"""

from __future__ import annotations

import tensorflow as tf

from model.graph import pool_out_ceil


@tf.keras.utils.register_keras_serializable(package="sqz")
class MaxPool2DCeil(tf.keras.layers.Layer):
    """Square ``pool_size`` / ``strides`` max-pool, Caffe ceil rounding, no padding.

    Output size per spatial axis is ``model.graph.pool_out_ceil(size, pool, stride)``;
    windows hanging over the bottom/right edge take the maximum of the pixels present.
    Needs ``strides <= pool_size <= 2 * strides`` (the streaming kernel's line buffers hold
    two output rows) and channels-last input.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        pool_size, strides = int(pool_size), int(strides)
        if not 1 <= strides <= pool_size <= 2 * strides:
            raise ValueError(
                f"MaxPool2DCeil needs strides <= pool_size <= 2 * strides, got "
                f"pool_size={pool_size}, strides={strides}"
            )
        self.pool_size = pool_size
        self.strides = strides

    def _out(self, size: int) -> int:
        return pool_out_ceil(size, self.pool_size, self.strides)

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([shape[0], self._out(shape[1]), self._out(shape[2]), shape[3]])

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        pad_h = (self._out(h) - 1) * self.strides + self.pool_size - h
        pad_w = (self._out(w) - 1) * self.strides + self.pool_size - w
        # The padding is the dtype's minimum, so it never wins a max: an edge window's
        # result is the maximum of the pixels that exist.
        x = tf.pad(inputs, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]],
                   constant_values=inputs.dtype.min)
        return tf.nn.max_pool2d(x, self.pool_size, self.strides, padding="VALID")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "strides": self.strides})
        return config


@tf.keras.utils.register_keras_serializable(package="sqz")
class FixedGlobalAvgPool(tf.keras.layers.Layer):
    """Mean over H and W, rounded onto ``ufixed<logit_width, logit_integer>`` (AP_RND, AP_SAT).

    ``out = clip(floor(mean / lsb + 0.5) * lsb, 0, 2**logit_integer - lsb)`` with
    ``lsb = 2**-(logit_width - logit_integer)``; shape (batch, C). The mean is float; the
    hardware multiplies the exact sum by a 16-bit reciprocal instead, which differs from the
    float mean by far less than one LSB (so the two agree except at rounding ties).
    """

    def __init__(self, logit_width: int = 16, logit_integer: int = 8, **kwargs):
        super().__init__(**kwargs)
        logit_width, logit_integer = int(logit_width), int(logit_integer)
        if not 1 <= logit_width <= 64:
            raise ValueError(f"logit_width must be 1..64, got {logit_width}")
        self.logit_width = logit_width
        self.logit_integer = logit_integer

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([shape[0], shape[3]])

    def call(self, inputs):
        lsb = 2.0 ** -(self.logit_width - self.logit_integer)
        top = 2.0**self.logit_integer - lsb
        mean = tf.reduce_mean(inputs, axis=[1, 2])
        q = tf.floor(mean / lsb + 0.5) * lsb
        return tf.clip_by_value(q, 0.0, top)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"logit_width": self.logit_width, "logit_integer": self.logit_integer})
        return config
