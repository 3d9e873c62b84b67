"""fmnist_scaling: how much does the scale of the input change what a neural network learns?"""

__version__ = "0.1.0"


def quiet_lightning() -> None:
    """Drop Lightning's notices that say nothing about a run here (an advert, a deprecation
    inside Lightning, a per-step logging interval this project does not use)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "litlogger" not in r.getMessage())
