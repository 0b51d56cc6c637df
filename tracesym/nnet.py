"""`ts.nnet`: the neural-network functions in one namespace, as Theano's `tensor.nnet`."""

from .ops.conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv2d
from .ops.elemwise import sigmoid, softplus
from .ops.nnet import (batch_normalization, binary_crossentropy, categorical_crossentropy,
                       dropout, elu, logsoftmax, log_softmax, one_hot, relu,
                       sigmoid_binary_crossentropy, softmax, softmax_cross_entropy)
from .ops.pool import AvgPoolGrad, MaxPoolGrad, MaxPoolGradGrad, Pool2d, pool_2d

__all__ = ["batch_normalization", "binary_crossentropy", "categorical_crossentropy", "dropout",
           "elu", "logsoftmax", "log_softmax", "one_hot", "relu", "sigmoid",
           "sigmoid_binary_crossentropy", "softmax", "softmax_cross_entropy", "softplus"]
__all__ += ["conv2d", "Conv2d", "Conv2dGradInputs", "Conv2dGradWeights", "pool_2d", "Pool2d",
            "MaxPoolGrad", "MaxPoolGradGrad", "AvgPoolGrad"]
