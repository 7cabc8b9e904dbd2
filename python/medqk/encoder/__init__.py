"""medqk.encoder: a BERT-family sentence encoder run by medqk: text in, embeddings out, float or quantized weights.

``SentenceEncoder.load(model_dir)`` reads a local sentence-transformers folder (or a plain BERT folder): the
``config.json`` (``model_type`` "bert": BERT, BioBERT, ClinicalBERT, PubMedBERT, MiniLM...), the weights from
``model.safetensors`` (the safetensors numpy API, no torch), the tokenizer from ``tokenizer.json`` (the
``tokenizers`` library), the pooling from ``1_Pooling/config.json`` (mean or CLS) and the normalization from
``modules.json``. Nothing is fetched: no network is used. Both libraries are the ``encoder`` extra
(``pip install "medqk[encoder]"``).

The forward pass is BERT's, in float32: embeddings (word + position + token type 0) and LayerNorm; per layer
self-attention (softmax over the unpadded keys only), output projection, residual and LayerNorm, the feed-forward
with exact (erf) GELU, residual and LayerNorm; then pooling over the unpadded tokens and, if configured, L2
normalization. With a quantized ``precision`` the layers' linear maps (query, key, value, attention output,
intermediate, output: 6 per layer) are :class:`medqk.QuantizedLinear` layers on int8 activations per token:
"int8" (per output channel), "int4" (symmetric, groups of 128), "nf4" (groups of 64), "codebook4" /
"codebook3" / "codebook2" (16 / 8 / 4 levels fitted per output channel); a plan such as
``{"default": "int4", "layer.0.*": "int8", "*.output.dense": "int8"}`` picks one per layer (fnmatch patterns over
:func:`layer_names`, the first match in the plan's order). Any precision but "float32" also keeps the word
embeddings as int8 rows with one float32 scale each (round to nearest of row / (max |row| / 127): a quarter of
the float table, 47 -> 12 MB for all-MiniLM-L6-v2's 30,522 x 384). Position and token-type embeddings,
LayerNorms, softmax and GELU stay float32. :func:`propose_plan` measures each layer's sensitivity on calibration
texts and proposes the cheapest plan of a low and a high precision that keeps a mean cosine budget
(``medqk quantize --budget``).

Texts longer than ``max_seq_length`` tokens ([CLS] and [SEP] included; the model folder's
``sentence_bert_config.json``, else the position table's size) are truncated, as sentence-transformers does.
A batch is padded to its longest text; padding changes no result beyond float32 summation order (padded keys get
zero attention weight, padded tokens are left out of pooling, and quantized activations are scaled per token).
"""

from ._bert import PRECISIONS, ModelFolderError, SentenceEncoder, layer_names
from ._plan import PlanProposal, propose_plan

__all__ = ["PRECISIONS", "ModelFolderError", "PlanProposal", "SentenceEncoder", "layer_names", "propose_plan"]
