"""MovieLens data layer: parsing (`DataLoader`), implicit interactions, leave-one-out split, samplers."""

from model.data.errors import DataFormatError
from model.data.interactions import Interactions
from model.data.loader import DataLoader, Dataset
from model.data.sampling import NegativeSampler, sample_candidates
from model.data.split import HeldOut, LeaveOneOutSplit, inner_leave_one_out, leave_one_out

__all__ = [
    "DataFormatError",
    "DataLoader",
    "Dataset",
    "HeldOut",
    "Interactions",
    "LeaveOneOutSplit",
    "NegativeSampler",
    "inner_leave_one_out",
    "leave_one_out",
    "sample_candidates",
]
