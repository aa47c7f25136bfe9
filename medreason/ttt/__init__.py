"""Test-time training (FineMedLM-o1): retrieve the nearest reasoning example, adapt, answer, restore.

>>> from medreason.ttt import TTTConfig
>>> TTTConfig(mode="lora").active_learning_rate
0.0001
"""

from medreason.ttt.adapt import EncodedExample, WeightSnapshot, adapted, answer_loss, encode_example, restored
from medreason.ttt.config import MODES, TTTConfig
from medreason.ttt.retrieval import Neighbour, Retriever, TextEncoder, corpus_fingerprint
from medreason.ttt.trainer import QuestionLatency, TestTimeTrainer, query_text

__all__ = [
    "MODES",
    "EncodedExample",
    "Neighbour",
    "QuestionLatency",
    "Retriever",
    "TTTConfig",
    "TestTimeTrainer",
    "TextEncoder",
    "WeightSnapshot",
    "adapted",
    "answer_loss",
    "corpus_fingerprint",
    "encode_example",
    "query_text",
    "restored",
]
