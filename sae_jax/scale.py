r"""Past one device's memory and past one device: the full-batch cost and gradient streamed in
chunks (:func:`chunked_cost_and_grad`), or sharded over a mesh (:func:`sharded_cost_and_grad`,
:func:`shard_map_cost_and_grad`), with the global ρ̂ in every case.

Examples:
  >>> import jax
  >>> import sae_jax
  >>> from sae_jax.scale import chunked_cost_and_grad
  >>> params = sae_jax.init_params(jax.random.key(0), 16, 4)
  >>> x = jax.random.uniform(jax.random.key(1), (100, 16), minval=0.1, maxval=0.9)
  >>> J, g = chunked_cost_and_grad(params, x, lam=1e-4, beta=3.0, rho=0.05, chunk_size=32)
  >>> g.W1.shape
  (4, 16)
"""

from sae_jax._src.chunked import (
    chunked_cost as chunked_cost,
    chunked_cost_terms as chunked_cost_terms,
    chunked_cost_and_grad as chunked_cost_and_grad,
    chunked_cost_terms_and_grad as chunked_cost_terms_and_grad,
    make_chunked_value_and_grad as make_chunked_value_and_grad,
    DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE,
    chunk_size_for_budget as chunk_size_for_budget,
)
from sae_jax._src.streaming import (
    device_chunks as device_chunks,
)
from sae_jax._src.sharded import (
    batch_mesh as batch_mesh,
    shard_batch as shard_batch,
    replicate as replicate,
    ShardedBatch as ShardedBatch,
    BATCH_AXIS as BATCH_AXIS,
    sharded_cost_and_grad as sharded_cost_and_grad,
    sharded_cost_terms_and_grad as sharded_cost_terms_and_grad,
    shard_map_cost_and_grad as shard_map_cost_and_grad,
    shard_map_cost_terms_and_grad as shard_map_cost_terms_and_grad,
    make_sharded_value_and_grad as make_sharded_value_and_grad,
    make_train_value_and_grad as make_train_value_and_grad,
)

__all__ = [
    "chunked_cost",
    "chunked_cost_terms",
    "chunked_cost_and_grad",
    "chunked_cost_terms_and_grad",
    "make_chunked_value_and_grad",
    "DEFAULT_CHUNK_SIZE",
    "chunk_size_for_budget",
    "device_chunks",
    "batch_mesh",
    "shard_batch",
    "replicate",
    "ShardedBatch",
    "BATCH_AXIS",
    "sharded_cost_and_grad",
    "sharded_cost_terms_and_grad",
    "shard_map_cost_and_grad",
    "shard_map_cost_terms_and_grad",
    "make_sharded_value_and_grad",
    "make_train_value_and_grad",
]
