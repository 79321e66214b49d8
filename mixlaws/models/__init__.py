"""Decoder-only dense and Mixture-of-Experts transformer LMs in Flax NNX.

Tensor names carry their dimensions as a suffix, from one alphabet:
B batch, T time (sequence), D model width, F FFN or expert hidden width, H heads, K head width,
V vocabulary, E routed experts, C expert capacity (slots per expert), S flattened tokens (B·T),
A assignments (token-expert pairs), P routing picks per token (top-k), G sequences in one routing
group, N sequence groups (B / G), Q tokens an expert picks per group (expert choice quota).

`Transformer(model_cfg, moe_cfg, rngs=...)` is the only entry point the rest of mixlaws needs:
`logits_btv, aux = model(tokens_bt, train=...)`; see `transformer.py` for the aux keys.
"""

from mixlaws.models.transformer import AUX_KEYS as AUX_KEYS
from mixlaws.models.transformer import Transformer as Transformer
