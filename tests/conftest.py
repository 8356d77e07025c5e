"""Suite-wide settings: one torch thread. The tiny models gain nothing from more, and on a 2-core machine that
runs anything else (CI, a busy laptop) spinning OpenMP threads made runs up to 10x slower in our measurements."""

import torch

torch.set_num_threads(1)
