r"""Training: :func:`train` (jitted L-BFGS / Adam / SGD), :func:`sweep` (a grid of settings in
one vmapped run), their configuration and results, and the run directory's files.

Examples:
  >>> import numpy as np
  >>> from sae_jax.training import TrainConfig, train
  >>> x = np.random.default_rng(0).uniform(0.1, 0.9, (40, 4))
  >>> r = train(x, TrainConfig(n_hidden=2, optimizer="adam", batch_size=10, steps=6, chunk=3, dtype="float32"))
  >>> [row["step"] for row in r.metrics], r.params.W1.shape
  ([0, 3, 6], (2, 4))
"""

from sae_jax._src.config import (
    TrainConfig as TrainConfig,
    GRADIENTS as GRADIENTS,
    OPTIMIZERS as OPTIMIZERS,
    RHO_HAT as RHO_HAT,
    DTYPES as DTYPES,
)
from sae_jax._src.training import (
    train as train,
    TrainResult as TrainResult,
    TrainingDiverged as TrainingDiverged,
    make_optimizer as make_optimizer,
)
from sae_jax._src.sweep import (
    sweep as sweep,
    SweepResult as SweepResult,
)
from sae_jax._src.rundir import (
    RunDir as RunDir,
    read_metrics as read_metrics,
)
from sae_jax._src.checkpoint import (
    save_checkpoint as save_checkpoint,
    load_checkpoint as load_checkpoint,
    save_params as save_params,
    load_params as load_params,
    find_params_file as find_params_file,
    read_run_config as read_run_config,
    WriteError as WriteError,
    CHECKPOINT_NAME as CHECKPOINT_NAME,
    PARAMS_NAME as PARAMS_NAME,
    CONFIG_NAME as CONFIG_NAME,
    METRICS_NAME as METRICS_NAME,
)

__all__ = [
    "TrainConfig",
    "GRADIENTS",
    "OPTIMIZERS",
    "RHO_HAT",
    "DTYPES",
    "train",
    "TrainResult",
    "TrainingDiverged",
    "make_optimizer",
    "sweep",
    "SweepResult",
    "RunDir",
    "read_metrics",
    "save_checkpoint",
    "load_checkpoint",
    "save_params",
    "load_params",
    "find_params_file",
    "read_run_config",
    "WriteError",
    "CHECKPOINT_NAME",
    "PARAMS_NAME",
    "CONFIG_NAME",
    "METRICS_NAME",
]
