"""Every flag of every ``sae-jax`` command: the parsers, without the code that runs them.

The ``TrainConfig`` flags of ``train`` and ``sweep`` (and gradcheck's hyperparameters) are generated
from the dataclass (:func:`sae_jax._src.config.field_help`): for each field of
:class:`~sae_jax.training.TrainConfig`, ``--`` + its name with ``_`` → ``-``, its type, its choices,
and its help with the default appended. A new option is written once, in ``config.py``. ``train``
takes every field, ``sweep`` those that change a sweep (:data:`SWEEP_FIELDS`). Each command's code
is in its own module (``sae_jax._src.cli.train``...), loaded when the command runs.

One name, one meaning, in every command: ``--n-hidden``, ``--lam``, ``--beta``, ``--rho`` and
``--steps`` are the autoencoder's (λ, β, ρ, optimizer iterations: ``TrainConfig``'s fields), in
``train``, ``sweep``, ``gradcheck``, ``self-taught`` and ``stacked`` alike; the softmax classifier's
are ``--softmax-lam`` and ``--softmax-steps``, fine-tuning's ``--fine-tune-steps``. A flag a command
no longer takes with that meaning is refused at parse time (exit 2, one line naming the flag to
use, nothing run; :func:`refuse`): ``--ae-lam`` (now ``--lam``), and ``probe``'s ``--lam`` and
``--steps`` (it trains no autoencoder: now ``--softmax-lam``, ``--softmax-steps``).

Examples:
  >>> import argparse
  >>> p = argparse.ArgumentParser()
  >>> add_config_flags(p)
  >>> args = p.parse_args(["--n-hidden", "36", "--optimizer", "adam", "--learning-rate", "1e-3"])
  >>> (args.n_hidden, args.optimizer, args.learning_rate, args.steps)  # None: not given
  (36, 'adam', 0.001, None)
  >>> p.parse_args(["--tied"]).tied, p.parse_args(["--no-tied"]).tied, p.parse_args([]).tied
  (True, False, None)
  >>> config_flag_help("lam")
  'weight decay lambda (default 1e-4)'
  >>> config_flag_help("optimizer")
  'lbfgs (full batch, zoom line search), adam or sgd (minibatch) (default lbfgs)'
"""

from __future__ import annotations

import argparse
import dataclasses

from ..config import TrainConfig, field_help

__all__ = [
    "CONFIG_FIELDS",
    "SWEEP_FIELDS",
    "SWEPT",
    "add_commands",
    "add_config_flag",
    "add_config_flags",
    "add_data_flags",
    "add_labelled_data_flags",
    "config_flag_help",
    "refuse",
]

# Every TrainConfig field, in the dataclass's order (the order of the flags in --help).
CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))
# The fields `sweep` takes comma-separated lists of, in the grid's order.
SWEPT = ("beta", "rho", "lam")
# The fields that change what `sweep` does (tests/test_cli_flags.py changes each and compares the
# sweeps, checkpoints included): a sweep holds out no validation rows.
SWEEP_FIELDS: tuple[str, ...] = tuple(f for f in CONFIG_FIELDS if f != "validation_fraction")

_RAW = argparse.RawDescriptionHelpFormatter
_PATH_HELP = "run directory, params.safetensors or checkpoint.safetensors"


def _format_default(v) -> str:
    if isinstance(v, float) and v != 0 and abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-")  # 1e-4, not 0.0001
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_flag_help(name: str, *, suffix: str = "") -> str:
    """The help of ``TrainConfig`` field ``name`` (its metadata), ``suffix``, then ``(default X)``."""
    f = field_help(name)
    return f"{f['help']}{suffix} (default {_format_default(f['default'])})"


def add_config_flag(p: argparse.ArgumentParser, name: str, *, use_default: bool = False,
                    comma_separated: bool = False, help: str | None = None) -> None:
    """Add ``--name`` for ``TrainConfig`` field ``name``: type, choices and help from its metadata
    (a ``bool`` field: ``--name`` / ``--no-name``).

    The parsed default is ``None`` (the flag was not given), or the field's default with
    ``use_default``. ``comma_separated``: a string of values, as ``sweep --beta 0,1,3`` takes.
    ``help``: this command's own text instead of the field's (the default is still appended).
    """
    f = field_help(name)
    flag = "--" + name.replace("_", "-")
    text = config_flag_help(name) if help is None else f"{help} (default {_format_default(f['default'])})"
    if comma_separated:
        p.add_argument(flag, dest=name, default=None, metavar="V1,V2,...",
                       help=config_flag_help(name, suffix=": comma-separated values").replace("%", "%%"))
        return
    default = f["default"] if use_default else None
    if f["type"] is bool:  # --name / --no-name, parsed None when neither is given
        p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                       help=text.replace("%", "%%"))
        return
    p.add_argument(flag, dest=name, type=f["type"], choices=f["choices"], default=default,
                   help=text.replace("%", "%%"))


def add_config_flags(p: argparse.ArgumentParser, *, fields: tuple[str, ...] = CONFIG_FIELDS,
                     help: dict | None = None) -> None:
    """A flag for each ``TrainConfig`` field of ``fields`` (parsed default ``None``); ``help``:
    ``{field: text}`` for fields whose help differs in this command."""
    for name in fields:
        add_config_flag(p, name, help=(help or {}).get(name))


class _Refused(argparse.Action):
    """A flag this command does not take (or no longer takes with that meaning): parsing it is a
    usage error, one line saying what to use instead (exit 2, before anything runs)."""

    def __init__(self, option_strings, dest, *, message: str, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs="?", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(self.message)


def refuse(p: argparse.ArgumentParser, flag: str, message: str) -> None:
    """``flag`` given to ``p``'s command ends it with ``message`` (exit 2, one line; not in ``--help``).

    Example:
      >>> p = argparse.ArgumentParser(prog="x")
      >>> refuse(p, "--ae-lam", "--ae-lam is now --lam")
      >>> p.parse_args([])
      Namespace()
      >>> try:
      ...     p.parse_args(["--ae-lam", "3e-3"])  # stderr: x: error: --ae-lam is now --lam
      ... except SystemExit as e:
      ...     print("exit", e.code)
      exit 2
    """
    p.add_argument(flag, action=_Refused, message=message)


def add_data_flags(p: argparse.ArgumentParser) -> None:
    """``--data`` and the flags that shape it (parsed defaults ``None``: see ``cli.args.data_kwargs``)."""
    p.add_argument(
        "--data", default=None, metavar="NAME_OR_PATH",
        help="natural (whitened natural-image patches, bundled), digits (scikit-learn 8x8), or a "
        ".npy/.npz (rows = samples), MNIST IDX or IMAGES.mat file",
    )
    p.add_argument("--n-patches", type=int, default=None, help="patches to sample for natural/.mat (default 10000)")
    p.add_argument("--patch-size", type=int, default=None, help="patch side for natural/.mat (default 8)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the patch sampling (default 0)")
    p.add_argument("--npz-key", default=None, help="array name inside a .npz file")


def add_labelled_data_flags(p: argparse.ArgumentParser, *, default: str, test_set: bool = True) -> None:
    """``--data``, ``--labels-path``, ``--npz-key`` and (``test_set``) ``--test-data``, ``--test-labels``
    of the experiments."""
    mnist = ("an MNIST directory (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
             "t10k-labels-idx1-ubyte, optionally .gz): trains on train-*, tests on t10k-*" if test_set else
             "an MNIST directory (train-images-idx3-ubyte, train-labels-idx1-ubyte, optionally .gz): reads only "
             "train-*, whose labelled classes' rows are split into training and test rows as the exercise does "
             "(t10k-* is not read)")
    p.add_argument(
        "--data", default=None, metavar="NAME_OR_PATH",
        help=f"digits (scikit-learn 8x8, labels 0-9 included), a .npy/.npz/MNIST IDX file of samples as rows "
        f"with --labels-path, or {mnist}; default {default}",
    )
    p.add_argument("--labels-path", default=None, metavar="PATH",
                   help="the labels of a data file: an IDX labels file (e.g. train-labels-idx1-ubyte) or a .npy "
                   "of integer class indices, one per row")
    if test_set:
        p.add_argument("--test-data", default=None, metavar="PATH",
                       help="a separate test set (a file as --data, with --test-labels) instead of a random split")
        p.add_argument("--test-labels", default=None, metavar="PATH", help="the labels of --test-data")
    p.add_argument("--npz-key", default=None, help="array name inside a .npz file")


def add_commands(sub) -> None:
    """Every subcommand's parser, in the order ``sae-jax --help`` lists them."""
    _add_gradcheck(sub)
    _add_train(sub)
    _add_visualize(sub)
    _add_encode(sub)
    _add_evaluate(sub)
    _add_check(sub)
    _add_sweep(sub)
    _add_probe(sub)
    _add_self_taught(sub)
    _add_stacked(sub)


def _add_gradcheck(sub) -> None:
    g = sub.add_parser(
        "gradcheck",
        help="manual backprop vs jax.grad vs finite differences (float64), on every device",
        description="Compare the tutorial's backprop with jax.grad and central finite "
        "differences in float64 on every device JAX sees, and print a table. "
        "Exit status 1 if any error exceeds its tolerance.",
    )
    g.add_argument("--n-visible", type=int, default=64, help="visible units (default 64)")
    add_config_flag(g, "n_hidden", use_default=True)
    g.add_argument("--m", type=int, default=10_000, help="number of samples (default 10000)")
    g.add_argument("--directions", type=int, default=4,
                   help="random directions per array for the finite differences (default 4)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the parameters, the biases, the data and the directions (default 0)")
    g.add_argument(
        "--data", choices=("natural", "random"), default="natural",
        help="natural: whitened natural-image patches, sqrt(n_visible) on a side (needs a square --n-visible); "
        "random: uniform in [0, 1] (standard normal for --output linear). Default natural",
    )
    for name in ("lam", "beta", "rho", "output"):
        add_config_flag(g, name, use_default=True)


def _add_train(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a sparse autoencoder (default: the UFLDL natural-image exercise)",
        description="Train the sparse autoencoder with jitted full-batch L-BFGS or minibatch "
        "Adam/SGD and write a run directory: config.json, checkpoint.safetensors (resumable), "
        "params.safetensors, metrics.jsonl, filters.png, training_curve.png. Defaults reproduce "
        "the UFLDL exercise: 10,000 8x8 natural-image patches, 64 visible, 25 hidden, rho=0.01, "
        "lambda=1e-4, beta=3, 400 L-BFGS iterations.",
        epilog="examples:\n  sae-jax train\n  sae-jax train --out runs/adam --optimizer adam "
        "--steps 4000\n  sae-jax train --resume runs/adam --steps 8000",
        formatter_class=_RAW,
    )
    add_config_flags(t)
    add_data_flags(t)
    t.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default runs/<data>-<optimizer>-h<n_hidden>-<timestamp>); "
                   "must not already hold a checkpoint")
    t.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its checkpoint (its config and data; "
                   "--steps may raise the total)")
    t.add_argument("--patch-shape", nargs="+", default=None, metavar="ROWSxCOLS",
                   help="shape of one filter in filters.png, e.g. 5x10 for 50 features (default square; "
                   "without it, filters.png of non-square data is skipped with a note)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--devices", default=None, metavar="all|N",
                   help="data parallel over all devices JAX sees or the first N (rows split, rho_hat and "
                   "m stay global: sae_jax._src.sharded; manual gradient, --rho-hat batch); default one device")


def _add_visualize(sub) -> None:
    v = sub.add_parser(
        "visualize",
        help="draw the learned filters (display_network) as a PNG",
        description="Draw each hidden unit's weights (rows of W1) as a normalised patch in a grid.",
        epilog="examples:\n  sae-jax visualize runs/my-run\n  sae-jax visualize runs/my-run/checkpoint.safetensors --out f.png",
        formatter_class=_RAW,
    )
    v.add_argument("params", metavar="PATH", help=_PATH_HELP)
    v.add_argument("--out", default=None, help="PNG to write (default: filters.png next to PATH)")
    v.add_argument("--patch-shape", nargs="+", default=None, metavar="ROWSxCOLS",
                   help="shape of one filter: ROWSxCOLS or ROWS COLS (default square)")


def _add_encode(sub) -> None:
    e = sub.add_parser(
        "encode",
        help="hidden-unit activations of a dataset -> .npy",
        description="Compute a2 = sigmoid(x W1^T + b1) for every sample of a dataset with trained "
        "parameters and save the (m, n_hidden) array as .npy. Without --data, the data the run was "
        "trained on (its recorded data spec; --n-patches, --patch-size, --data-seed, --npz-key override "
        "its fields).",
        epilog="examples:\n  sae-jax encode runs/my-run --out features.npy      # the run's own data\n"
        "  sae-jax encode runs/my-run --data natural --out features.npy\n"
        "  sae-jax encode runs/my-run/params.safetensors --data x.npy --out x_features.npy",
        formatter_class=_RAW,
    )
    e.add_argument("params", metavar="PATH", help=_PATH_HELP)
    add_data_flags(e)
    e.add_argument("--out", required=True, help="the .npy file to write")


def _add_evaluate(sub) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="diagnostics of a trained run: per-sample reconstruction error, dead/saturated units, "
        "rho_hat vs rho (table + evaluation.png)",
        description="Evaluate trained parameters on a dataset (default: the run's own data; with the run's "
        "validation split, training and held-out rows separately) and print a short table: cost terms, "
        "the distribution of the per-sample reconstruction error 1/2||x_hat - x||^2, the fraction of dead "
        f"units (never above {0.1:g}) and saturated units (never below {0.9:g}), rho_hat against rho "
        "(sae_jax.metrics). Writes evaluation.png: the rho_hat histogram with rho marked and the "
        "per-sample error histogram.",
        epilog="examples:\n  sae-jax evaluate runs/my-run\n"
        "  sae-jax evaluate runs/my-run --data digits --out digits_eval.png",
        formatter_class=_RAW,
    )
    ev.add_argument("params", metavar="PATH", help=_PATH_HELP)
    add_data_flags(ev)
    ev.add_argument("--out", default=None, help="PNG to write (default: evaluation.png next to PATH)")


def _add_check(sub) -> None:
    c = sub.add_parser(
        "check",
        help="test your own sparse-autoencoder cost and gradient; names the mistake if it finds one",
        description="Run someone else's cost-and-gradient on float64 probe cases, compare it with "
        "sae-jax's float64 reference and name the catalogued mistake its outputs match, or locate the "
        "difference (which array, which part, by what factor). Exit 0 when everything agrees (or differs "
        "only by a documented convention: tied weights with UFLDL-style (lambda/2)||W1||^2), 1 with the "
        "diagnosis, 2 when the code cannot be run. FILE.py:FUNCTION imports the file, which executes its "
        "top-level code with your permissions: check only code you trust.",
        epilog="examples:\n  sae-jax check my_sae.py:sparseAutoencoderCost\n"
        "  sae-jax check mypkg.sae:cost_and_grad --convention rows --output linear\n"
        "  sae-jax check my_tied_sae.py:sparseAutoencoderCost --tied\n"
        "  sae-jax check my_l1_sae.py:sparseAutoencoderCost --l1 0.1\n"
        "  sae-jax check my_dae.py:sparseAutoencoderCost --denoising\n"
        "  sae-jax check --write-cases cases/\n  sae-jax check --results results.mat",
        formatter_class=_RAW,
    )
    c.add_argument("target", nargs="?", default=None, metavar="FILE.py:FUNCTION",
                   help="path/to/file.py:function or package.module:function (imported: its top-level code runs)")
    c.add_argument("--convention", choices=("ufldl", "rows"), default=None,
                   help="ufldl: f(theta, visibleSize, hiddenSize, lambda, sparsityParam, beta, data); "
                   "rows: f(params, x, lam, beta, rho) (default: read from the signature)")
    c.add_argument("--output", choices=("sigmoid", "linear"), default=None,
                   help="the decoder the code implements (default sigmoid; for --results: the file's)")
    c.add_argument("--tied", action="store_true",
                   help="tied weights W2 = W1.T: theta = [W1(:); b1(:); b2(:)], or rows-form params "
                   "Params(W1, b1, None, b2) and gradient W1, b1, b2 (weight decay lambda*||W1||^2, both copies); "
                   "with --write-cases: the tied cases")
    c.add_argument("--l1", type=float, default=None, metavar="GAMMA", help="the cost has the L1 activation penalty "
                   "GAMMA*(1/m)*sum|a2| (delta2 += GAMMA*f'(z2)); GAMMA goes to the function's l1 parameter or its "
                   "extra one (after corruptedData), else is taken as fixed in its code; the L1 cases at GAMMA")
    c.add_argument("--denoising", action="store_true", help="the function reads a corrupted input and reconstructs "
                   "the clean data: ufldl f(theta, ..., beta, data, corruptedData), rows f(params, x, lam, beta, rho, "
                   "x_input) or a keyword x_input; rho_hat and delta2*x' use it; the denoising cases")
    c.add_argument("--packing", choices=("row", "column"), default=None,
                   help="how the code unpacks theta: row (numpy's W1.ravel()) or column (MATLAB's W1(:)); default: "
                   "detected from its cost; with --results: how the file's grad is packed (default column)")
    c.add_argument("--arrays", choices=("auto", "numpy", "torch"), default="auto",
                   help="inputs as numpy arrays or torch tensors (default auto: torch if the module imports it)")
    c.add_argument("--tol", type=float, default=None, help="relative tolerance per array and probe (default 1e-7)")
    c.add_argument("--write-cases", default=None, metavar="DIR",
                   help="write the probe cases and expected outputs (.npz, .mat, .json, README.md) to DIR")
    c.add_argument("--results", default=None, metavar="FILE",
                   help="compare a results file (.npz, .mat or .json) made from --write-cases")


def _add_sweep(sub) -> None:
    w = sub.add_parser(
        "sweep",
        help="train a grid of (beta, rho, lambda) settings in one compiled run",
        description="Train every combination of the given beta, rho and lambda values from the same "
        "initial weights on the same data (and minibatches), in one compiled program that runs the settings "
        "one after another (--batching map, the default on CPU) or all at once (vmap, the default on "
        "accelerators) (sae_jax._src.sweep), and write DIR/sweep.json, DIR/summary.csv, DIR/tradeoff.png "
        "(reconstruction vs sparsity, mean rho_hat vs rho) and DIR/settings/<k>-beta..-rho..-lam../ "
        "(params.safetensors, metrics.jsonl, config.json; filters.png when n_visible is a square). Every "
        "other flag is one value shared by all settings, with train's meaning; a sweep holds out no validation "
        "rows. It checkpoints every --checkpoint-every steps and at the end: --resume DIR continues a killed "
        "sweep, or extends a finished one to a larger --steps.",
        epilog="examples:\n  sae-jax sweep --beta 0,1,3 --rho 0.01,0.05 --lam 1e-4 --out runs/sweep\n"
        "  sae-jax sweep --beta 0.5,1,3,5 --rho 0.01,0.03,0.05,0.1 --optimizer adam --steps 2000",
        formatter_class=_RAW,
    )
    for name in SWEPT:
        add_config_flag(w, name, comma_separated=True)
    add_config_flags(w, fields=tuple(f for f in SWEEP_FIELDS if f not in SWEPT))
    add_data_flags(w)
    w.add_argument("--batching", choices=("auto", "vmap", "map"), default="auto",
                   help="run the settings all at once (vmap: accelerators) or one after another inside the "
                   "one compiled program (map: CPUs); default auto = map on CPU, vmap otherwise")
    w.add_argument("--out", default=None, metavar="DIR",
                   help="sweep directory (default runs/sweep-<data>-<optimizer>-h<n_hidden>-<timestamp>); "
                   "must not already hold a sweep.json")
    w.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the sweep in DIR from its checkpoint (a killed one, or a finished one to a "
                   "larger --steps); its grid, data and config are the checkpoint's")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")


# --- the experiments (sae_jax.experiments; code in sae_jax._src.cli.experiments) -----------------------

_SOFTMAX_LAM, _SOFTMAX_STEPS = 1e-4, 100  # UFLDL's softmaxTrain (softmaxExercise.m: lambda 1e-4, maxIter 100)


def _add_seed_and_softmax_flags(p, *, test_fraction: float, fine_tuning: bool = False) -> None:
    p.add_argument("--seeds", default="0,1,2", metavar="S1,S2,...",
                   help="comma-separated seeds, one table column each (default 0,1,2)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help=f"held-out share of the (labelled) rows, per seed's split (default {test_fraction:g}; "
                   "not with a separate test set)")
    p.set_defaults(default_test_fraction=test_fraction)
    also = " and of the fine-tuning (on the softmax's theta only, as stackedAECost)" if fine_tuning else ""
    p.add_argument("--softmax-lam", type=float, default=_SOFTMAX_LAM, metavar="LAM",
                   help=f"weight decay lambda of each softmax classifier{also} (default {_SOFTMAX_LAM:g})")
    p.add_argument("--softmax-steps", type=int, default=_SOFTMAX_STEPS, metavar="N",
                   help=f"L-BFGS iterations of each softmax classifier, at most (default {_SOFTMAX_STEPS})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_autoencoder_flags(p, *, n_hidden_help: str, n_hidden_metavar: str) -> None:
    """The autoencoders' flags: the names and meanings of ``train``'s, the defaults the preset's."""
    p.add_argument("--preset", choices=("digits", "mnist"), default="digits",
                   help="autoencoder settings: digits (for the 8x8 digits: lambda 3e-4, the exercise's 3e-3 "
                   "scaled by 64/784) or mnist (the exercise's own, for 28x28 MNIST); default digits")
    p.add_argument("--n-hidden", default=None, metavar=n_hidden_metavar, help=n_hidden_help)
    p.add_argument("--lam", type=float, default=None,
                   help="the autoencoders' weight decay lambda, as train's (preset digits: 3e-4, mnist: 3e-3)")
    p.add_argument("--beta", type=float, default=None, help="the autoencoders' sparsity weight beta (preset: 3)")
    p.add_argument("--rho", type=float, default=None, help="the autoencoders' target activation rho (preset: 0.1)")
    p.add_argument("--steps", type=int, default=None, help="L-BFGS iterations of each autoencoder (preset: 400)")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None,
                   help="float64 (enables JAX x64; the preset) or float32")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="directory for results.json and the pictures (default runs/<command>-<data>-<timestamp>); "
                   "must not already hold a results.json")
    refuse(p, "--ae-lam", "--ae-lam is now --lam (the autoencoders' weight decay lambda, as in train); "
           "the softmax's is --softmax-lam")


def _add_probe(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="are a run's features any good? held-out softmax accuracy on them vs on the raw inputs",
        description="Train a softmax classifier (UFLDL's softmaxTrain: --softmax-lam 1e-4, --softmax-steps 100) on "
        "a trained run's hidden activations a2 = sigmoid(x W1^T + b1) of a random training split and report "
        "its held-out accuracy, against the same classifier on the raw inputs: one table, one column per "
        "seed (split), mean +- std. Without --data, the run's own data (its recorded data spec), which "
        "must have labels (digits, or a data file and --labels-path).",
        epilog="examples:\n  sae-jax probe runs/digits\n"
        "  sae-jax probe runs/mnist --data mnist/   # train on MNIST's training files, test on t10k\n"
        "  sae-jax probe runs/my-run --data digits --json",
        formatter_class=_RAW,
    )
    p.add_argument("params", metavar="RUN", help=_PATH_HELP)
    add_labelled_data_flags(p, default="the run's own data")
    _add_seed_and_softmax_flags(p, test_fraction=0.3)
    refuse(p, "--lam", "probe trains no autoencoder: --lam is the autoencoder's weight decay lambda in every "
           "command; the softmax classifier's is --softmax-lam")
    refuse(p, "--steps", "probe trains no autoencoder: --steps is the autoencoder's L-BFGS iterations in "
           "every command; the softmax classifier's are --softmax-steps")


def _add_self_taught(sub) -> None:
    p = sub.add_parser(
        "self-taught",
        help="UFLDL's self-taught learning: features from digits 5-9, a classifier on 0-4, vs raw pixels",
        description="A sparse autoencoder learns features from the unlabelled classes only (default digits 5-9); "
        "softmax classifiers on those features and on the raw pixels of the labelled classes (0-4, relabelled "
        "0..4) are trained on one part and tested on the other (--test-fraction 0.5, as the exercise). One "
        "autoencoder and split per seed; prints one table (mean +- std over seeds) and writes DIR/results.json "
        "and DIR/features.png (the first seed's features).",
        epilog="examples:\n  sae-jax self-taught --out runs/self-taught\n"
        "  sae-jax self-taught --data mnist/ --preset mnist   # the exercise: MNIST's training files, split in order",
        formatter_class=_RAW,
    )
    add_labelled_data_flags(p, default="digits", test_set=False)
    _add_autoencoder_flags(p, n_hidden_help="hidden units of the autoencoder (preset digits: 64, mnist: 200)",
                           n_hidden_metavar="H")
    p.add_argument("--unlabelled-classes", default="5,6,7,8,9", metavar="C1,C2,...",
                   help="classes whose rows train the autoencoder (labels unused; default 5,6,7,8,9)")
    p.add_argument("--labelled-classes", default="0,1,2,3,4", metavar="C1,C2,...",
                   help="classes the classifiers learn and are tested on (default 0,1,2,3,4)")
    p.add_argument("--split", choices=("random", "ordered"), default=None,
                   help="the labelled rows' split: random per seed, or ordered (the first rows train, the rest "
                   "test: the exercise's); default: the preset's (digits random, mnist ordered)")
    _add_seed_and_softmax_flags(p, test_fraction=0.5)
    for flag in ("--test-data", "--test-labels"):
        refuse(p, flag, f"self-taught tests on the labelled classes' rows of --data (the exercise splits them); "
               f"{flag} is for probe and stacked")


def _add_stacked(sub) -> None:
    p = sub.add_parser(
        "stacked",
        help="UFLDL's stacked autoencoder: greedy pretraining, softmax, fine-tuning; accuracy before and after",
        description="Per seed: a random split; sparse autoencoders pretrained greedily on the training rows "
        "(layer 2 on layer 1's features), a softmax on the last layer's features (accuracy 'before "
        "fine-tuning'), then the whole stack fine-tuned by backpropagation (L-BFGS, weight decay on the "
        "softmax only: UFLDL's stackedAECost; 'after'), against a softmax on the raw pixels. Prints one table "
        "and writes DIR/results.json, DIR/second_layer.png and DIR/second_layer_fine_tuned.png (the first "
        "seed's second-layer units in input space, rows of W2 W1).",
        epilog="examples:\n  sae-jax stacked --out runs/stacked\n  sae-jax stacked --n-hidden 100,49 --seeds 0\n"
        "  sae-jax stacked --data mnist/ --preset mnist   # the exercise: train on 60,000, test on t10k's 10,000",
        formatter_class=_RAW,
    )
    add_labelled_data_flags(p, default="digits")
    _add_autoencoder_flags(p, n_hidden_help="comma-separated hidden units, one per layer (preset digits: 64,36; "
                           "mnist: 200,200)", n_hidden_metavar="H1,H2,...")
    p.add_argument("--fine-tune-steps", type=int, default=400,
                   help="L-BFGS iterations of fine-tuning, at most (default 400, as the exercise)")
    _add_seed_and_softmax_flags(p, test_fraction=0.3, fine_tuning=True)
