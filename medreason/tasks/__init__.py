"""The multiple-choice task shared by evaluation, RL, synthesis and curation.

One record schema (:class:`EvalRecord`, read and validated by :func:`load_records`), one prompt
format (:class:`PromptTemplate`) and one grader (:func:`extract_choice`), so a response is prompted
and graded the same way in training and in evaluation. This layer imports only ``medreason.utils``
and ``medreason.data``.

>>> from medreason.tasks import EvalRecord, PromptTemplate, grade
>>> record = EvalRecord("1", "Which gland?", {"A": "Thyroid", "B": "Adrenal"}, "A")
>>> PromptTemplate(instruction="")(record)[0]["content"]
'Which gland?\\nA. Thyroid\\nB. Adrenal'
>>> grade("The answer is \\\\boxed{A}.", record.options, record.answer)
True
"""

from medreason.tasks.grading import extract_choice, grade
from medreason.tasks.mcq import Benchmark, EvalRecord, load_records, to_eval_record
from medreason.tasks.prompts import II_MEDICAL_INSTRUCTION, PromptTemplate, format_question

__all__ = [
    "II_MEDICAL_INSTRUCTION",
    "Benchmark",
    "EvalRecord",
    "PromptTemplate",
    "extract_choice",
    "format_question",
    "grade",
    "load_records",
    "to_eval_record",
]
