"""Data: bundled real data, readers and the simulator."""

from ._bundled import human_gene_alias, human_go, norman2019_subset
from ._fitness import FitnessScreen, read_fitness
from ._paths import shared_data_dir
from ._read import read
from ._simulate import simulate
from ._simulate_disk import simulate_to_disk

__all__ = [
    "FitnessScreen",
    "human_gene_alias",
    "human_go",
    "norman2019_subset",
    "read",
    "read_fitness",
    "shared_data_dir",
    "simulate",
    "simulate_to_disk",
]
