"""Benchmarks for sae-jax: speed against numpy and PyTorch peers, on this machine, in one run.

Run ``python -m benchmarks`` (``--quick`` for a fast look, ``--help`` for the flags). Peers
(numpy manual backprop, PyTorch autograd, scipy L-BFGS-B) live here and only here: the
``sae_jax`` package never imports anything from this directory.

Modules:
  timing     warm-up, interleaved repetitions, medians and interquartile ranges
  machine    CPU / BLAS / versions / device info for the results
  peers      the numpy (UFLDL-style, column layout) and PyTorch autograd peers
  kernels    cost+grad per size and dtype, plus same-run GEMM rates
  sweep      K hyperparameter settings trained in one vmapped run vs K sequential runs
  e2e        the UFLDL exercise (400 L-BFGS iterations) vs scipy L-BFGS-B on the numpy peer
  memory_peak  peak memory per size (subprocess + ru_maxrss, XLA memory analysis)
  report     JSON + markdown under benchmarks/results/
"""
