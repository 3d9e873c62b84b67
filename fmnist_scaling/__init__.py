"""fmnist_scaling: how much does the scale of the input change what a neural network learns?"""

__version__ = "0.1.0"
