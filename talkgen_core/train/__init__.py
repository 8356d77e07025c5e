"""Training the embedded demo model on synthetic talking faces (VAE, then the DiT in two curriculum stages).

    python -m talkgen_core.train --minutes 60 --out runs/demo [--resume]

See ``loop.py`` for the stages and ``objective.py`` for the loss.
"""

from talkgen_core.train.config import TRAIN_CONFIGS, TrainConfig, get_train_config
from talkgen_core.train.loop import TrainSummary, Trainer, train

__all__ = ["TRAIN_CONFIGS", "TrainConfig", "TrainSummary", "Trainer", "get_train_config", "train"]
