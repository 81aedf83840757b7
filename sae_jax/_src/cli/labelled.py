"""The experiments' labelled data: ``--data``/``--labels-path``, an MNIST directory, a separate test set.

:func:`load_labelled` reads the training data with labels (``digits``; a data file and
``--labels-path``; an MNIST directory's ``train-*`` files; or a probed run's recorded data);
:func:`load_test_set` the separate test set, if any (an MNIST directory's ``t10k-*`` files, or
``--test-data`` with ``--test-labels``). Every problem is one :class:`~sae_jax._src.cli.args.UsageError`
or :class:`~sae_jax.InputError` naming the flag, raised before any work.

Examples:
  >>> from sae_jax.cli import build_parser
  >>> args = build_parser().parse_args(["stacked", "--test-data", "t.npy"])
  >>> load_test_set(args, output="sigmoid", n_features=64)
  Traceback (most recent call last):
  ...
  sae_jax._src.cli.args.UsageError: --test-data needs --test-labels (its labels, one per row)
"""

from __future__ import annotations

import os

import numpy as np

from ..data import BUILTIN, DataSpec, data_spec, find_mnist, load_dataset, load_from_spec, load_mnist, sniff_format
from ..validate import InputError, check_data_values
from .args import UsageError
from .trained import recorded_data_spec

__all__ = ["is_mnist_dir", "load_labelled", "load_test_set"]

_NO_LABELS = "random and without labels; use --data digits, or a data file with --labels-path"


def is_mnist_dir(args) -> bool:
    """``--data`` names a directory (read as MNIST's four files, :func:`sae_jax.data.find_mnist`)."""
    return args.data is not None and os.path.isdir(args.data)


def _labels_problem(name: str, labels_path, where: str) -> str | None:
    """Why ``name`` cannot give labels with these flags (one line starting with ``where``), or None."""
    if name == "natural":
        return f"{where}: 'natural' is whitened natural-image patches, {_NO_LABELS}"
    if name == "digits":
        return f"{where}: --labels-path is for data files; 'digits' carries its own labels" if labels_path else None
    if name not in BUILTIN and os.path.isfile(name):
        if sniff_format(name) == "mat":
            return f"{where}: {name} is an IMAGES.mat file, whose patches are {_NO_LABELS}"
        if labels_path is None:
            return (f"{where}: the data file {name} needs --labels-path (an IDX labels file or a .npy of "
                    "integer class indices, one per row)")
    return None


def _mnist_part(args, part: str, output: str) -> tuple[np.ndarray, np.ndarray, DataSpec]:
    """Part ``"train"`` or ``"test"`` of the MNIST directory ``--data``, checked; its images file's spec."""
    for flag, v in (("--labels-path", args.labels_path), ("--test-data", getattr(args, "test_data", None)),
                    ("--test-labels", getattr(args, "test_labels", None)), ("--npz-key", args.npz_key)):
        if v is not None:
            raise UsageError(f"{flag} is for data files; the MNIST directory {args.data} carries its own "
                             "(train-* to train, t10k-* to test)")
    images = find_mnist(args.data, (part,))[part][0]
    x, y = load_mnist(args.data, part)
    check_data_values(x, output=output, name=f"data in {images}")
    return x, y, data_spec(images)


def load_labelled(args, *, output: str = "sigmoid", run=None) -> tuple[np.ndarray, np.ndarray, DataSpec]:
    """``(x, y, spec)``: ``--data`` (default ``digits``, or with ``run`` the run's recorded data) with labels.

    ``x`` float64 ``(m, n)``, ``y`` int64 ``(m,)``; ``spec`` records the source (file hash included;
    for an MNIST directory, its training images file).
    """
    if is_mnist_dir(args):
        return _mnist_part(args, "train", output)
    if args.data is not None or run is None:
        name = "digits" if args.data is None else args.data
        problem = _labels_problem(name, args.labels_path, f"--data {name}")
        if problem:
            raise UsageError(problem)
        x, y = load_dataset(name, output=output, key=args.npz_key, labels=True, labels_path=args.labels_path)
        return x, y, data_spec(name, key=args.npz_key)
    recorded = recorded_data_spec(run)
    if recorded is None:
        raise UsageError(
            f"{run!r} records no data spec (trained on an in-memory array, or a params file outside its run "
            "directory): pass --data NAME_OR_PATH (and --labels-path for a data file)"
        )
    spec = DataSpec.from_dict(recorded)
    if args.npz_key is not None:
        spec = spec._replace(key=args.npz_key)
    problem = _labels_problem(spec.name, args.labels_path, f"the data of {run}")
    if problem:
        raise UsageError(problem)
    x, y = load_from_spec(spec, output=output, labels=True, labels_path=args.labels_path)
    return x, y, spec


def load_test_set(args, *, output: str, n_features: int) -> tuple[tuple[np.ndarray, np.ndarray] | None, dict | None]:
    """``((x_test, y_test), spec dict)`` of the separate test set, or ``(None, None)`` without one.

    The test set is an MNIST directory's ``t10k-*`` files (``--data DIR``) or ``--test-data`` with
    ``--test-labels`` (a file as ``--data``); it must have ``n_features`` per row.
    """
    if is_mnist_dir(args):
        x, y, spec = _mnist_part(args, "test", output)
        where, labels = f"the t10k images of {args.data}", find_mnist(args.data, ("test",))["test"][1]
    elif args.test_data is None:
        if args.test_labels is not None:
            raise UsageError("--test-labels is given without --test-data")
        return None, None
    else:
        if args.test_labels is None:
            raise UsageError("--test-data needs --test-labels (its labels, one per row)")
        if args.test_data in BUILTIN or not os.path.isfile(args.test_data):
            raise UsageError(f"--test-data must be a data file (.npy, .npz or IDX), got {args.test_data!r}")
        problem = _labels_problem(args.test_data, args.test_labels, f"--test-data {args.test_data}")
        if problem:
            raise UsageError(problem)
        try:
            x, y = load_dataset(args.test_data, output=output, key=args.npz_key, labels=True,
                                labels_path=args.test_labels)
        except InputError as e:
            raise UsageError(f"--test-data: {e}") from None
        spec = data_spec(args.test_data, key=args.npz_key)
        where, labels = f"--test-data {args.test_data}", args.test_labels
    if x.shape[1] != n_features:
        raise UsageError(f"{where} has {x.shape[1]} features per row, the training data {n_features}")
    return (x, y), spec.to_dict() | {"labels": os.path.abspath(labels)}
