"""fmnist_scaling: how much does the scale of the input change what a neural network learns?"""

__version__ = "0.1.0"


def quiet_lightning() -> None:
    """Drop Lightning's notices that say nothing about a run here (an advert, a deprecation
    inside Lightning, a per-step logging interval this project does not use, the warning that a
    resumed run's own checkpoint folder is not empty), and print each of its lines once."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "litlogger" not in r.getMessage())
    # Lightning's top logger prints its lines itself ("INFO: ..."); where Hydra has set up logging
    # they would also reach Hydra's console handler, twice in all. Keep Lightning's short line
    # on the console, and send the lines to Hydra's log files (train.log) too.
    # (Each job of a sweep in one process has its own train.log: the file handlers follow root's.)
    top, root = logging.getLogger("lightning"), logging.getLogger()
    if not root.handlers:
        return
    top.propagate = False
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    for handler in [h for h in top.handlers if isinstance(h, logging.FileHandler) and h not in files]:
        top.removeHandler(handler)
    for handler in [h for h in files if h not in top.handlers]:
        top.addHandler(handler)
