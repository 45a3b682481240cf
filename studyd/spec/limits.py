"""Hard limits on a spec: what one submission may ask of a shared server."""

from models.variants import MAX_SAMPLES

MAX_TRIALS = 10_000
MAX_EPOCHS = 1_000
MAX_WIDTH = 8_192
MAX_DEPTH = 8
MAX_TIMEOUT_S = 7 * 24 * 3600
MAX_K = MAX_SAMPLES  # Multi-Sample's K (the registry's bound)
MAX_CHOICES = 64
MAX_GRID = 100_000
MAX_BASELINES = 100
MAX_REPEATS = 20
MAX_AUTO_SEEDS = 100
MAX_TOP_K = 50
MAX_CONSTRAINTS = 8
