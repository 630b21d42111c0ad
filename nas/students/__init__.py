"""What a student is and what it costs: slicing a pretrained DistilBERT/BERT source into a
stock DistilBERT student (``build``), loading sources (``sources``), the activations slicing
ranks by (``calibration``), exact parameter counts and memory estimates (``cost``).

No Optuna, no Ray: a student can be built and costed without a study.
"""

from nas.students.build import (
    build_student,
    count_parameters,
    ranking_description,
)
from nas.students.calibration import (
    ActivationStats,
    calibration_stats,
)
from nas.students.cost import (
    MemoryEstimate,
    describe_student,
    estimate_training_memory,
    student_report,
)
from nas.students.sources import (
    load_source,
)

__all__ = [
    "ActivationStats",
    "MemoryEstimate",
    "build_student",
    "calibration_stats",
    "count_parameters",
    "describe_student",
    "estimate_training_memory",
    "load_source",
    "ranking_description",
    "student_report",
]
