"""sae-jax's implementation: private, free to move. Import from the public modules (``sae_jax``,
``sae_jax.training``, ...), never from here."""
