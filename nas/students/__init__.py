"""What a student is and what it costs: slicing a pretrained DistilBERT/BERT source into a
stock DistilBERT student (``build``), loading sources (``sources``), the activations slicing
ranks by (``calibration``), exact parameter counts and memory estimates (``cost``), and the
small non-transformer families bilstm / cnn / bow (``families``), vocabulary pruning
(``vocab``), a trial's student of any family (``assemble``); a saved student as an ONNX graph
(``onnx``).

No Optuna, no Ray: a student can be built and costed without a study.
"""

from nas.students.assemble import (
    build_trial_student,
    prune_student_vocab,
    save_trial_student,
)
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
    estimate_family_memory,
    estimate_training_memory,
    student_report,
    teacher_in_loop_memory,
)
from nas.students.families import (
    BiLSTMShape,
    BowShape,
    CNNShape,
    FamilyModel,
    FamilyShape,
    build_family,
    count_family_parameters,
    family_shape,
    is_family_folder,
    load_family,
    pca_reduce,
    save_family,
)
from nas.students.onnx import (
    ONNX_FILE,
    OPSET,
    OnnxExportError,
    OnnxGraph,
    check_onnx_available,
    export_onnx,
)
from nas.students.sources import (
    load_source,
)
from nas.students.vocab import (
    PrunedVocab,
    UnknownCount,
    check_vocabulary_size,
    diverging_texts,
    prune_counts,
    prune_embeddings,
    prune_vocabulary,
    save_pruned_tokenizer,
    unknown_count,
)

__all__ = [
    "ONNX_FILE",
    "OPSET",
    "ActivationStats",
    "BiLSTMShape",
    "BowShape",
    "CNNShape",
    "FamilyModel",
    "FamilyShape",
    "MemoryEstimate",
    "OnnxExportError",
    "OnnxGraph",
    "PrunedVocab",
    "UnknownCount",
    "build_family",
    "build_student",
    "build_trial_student",
    "calibration_stats",
    "check_onnx_available",
    "check_vocabulary_size",
    "count_family_parameters",
    "count_parameters",
    "describe_student",
    "diverging_texts",
    "estimate_family_memory",
    "estimate_training_memory",
    "teacher_in_loop_memory",
    "export_onnx",
    "family_shape",
    "is_family_folder",
    "load_family",
    "load_source",
    "pca_reduce",
    "prune_counts",
    "prune_embeddings",
    "prune_student_vocab",
    "prune_vocabulary",
    "ranking_description",
    "save_family",
    "save_pruned_tokenizer",
    "save_trial_student",
    "student_report",
    "unknown_count",
]
