"""studyd: an automatic hyperparameter study service for dropout research."""

__version__ = "0.1.0"
