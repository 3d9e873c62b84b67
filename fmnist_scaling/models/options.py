"""The names the networks' options take, without torch: the config's schema checks them before
a run imports anything (:mod:`fmnist_scaling.run.schema`), the networks build from them."""

#: ``model.net.activation``: the hidden activation.
ACTIVATION_NAMES = ("relu", "sigmoid", "tanh", "gelu")
#: ``model.init``: how the weights of every linear and convolution layer are drawn (biases: 0).
INITS = ("default", "he", "lecun")
#: ``model.input_norm``: a BatchNorm on the input, the learned-scaling baseline (or none).
INPUT_NORMS = ("none", "batchnorm")
