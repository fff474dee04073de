"""A deterministic synthetic transcriptome and RNA-seq reads with known truth.

``make_transcriptome`` draws transcripts of random sequence, each with a baseline
abundance; a few are planted as differentially expressed (a fold change of
``fold`` up or down in condition ``B`` against ``A``). ``simulate_sample`` draws
single-end reads from one sample: molecules in proportion to the abundance (with
a little biological noise per sample), a fragment from a random place of the
molecule, sequencing errors, and the 3' adapter read through when the fragment
is shorter than the read. Everything follows from the seed.

The truth of a sample is its molecule fractions (TPM, ``tpm``) and, between the
conditions, the planted ``de`` names.
"""

from __future__ import annotations

import gzip
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

ADAPTER = "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC"
BASES = "ACGT"


@dataclass(frozen=True)
class Transcriptome:
    """Transcripts (name → sequence), baseline abundances, and the planted fold changes."""

    sequences: dict[str, str]
    abundance: dict[str, float]
    fold: dict[str, float] = field(default_factory=dict)

    @property
    def de(self) -> set[str]:
        """The transcripts planted as differentially expressed."""
        return {name for name, change in self.fold.items() if change != 1.0}

    def expression(self, condition: str) -> dict[str, float]:
        """Relative molecule abundance in a condition (``A`` is the baseline)."""
        return {
            name: level * (self.fold.get(name, 1.0) if condition == "B" else 1.0)
            for name, level in self.abundance.items()
        }

    def write_fasta(self, path: Path) -> Path:
        with path.open("w", encoding="ascii") as out:
            for name, sequence in self.sequences.items():
                out.write(f">{name}\n")
                out.writelines(sequence[i : i + 70] + "\n" for i in range(0, len(sequence), 70))
        return path


@dataclass(frozen=True)
class Sample:
    """One simulated sample: its FASTQ and the TPM truth of what it was drawn from."""

    name: str
    condition: str
    fastq: Path
    tpm: dict[str, float]


def make_transcriptome(seed: int = 16, count: int = 40, planted: int = 8, fold: float = 4.0) -> Transcriptome:
    """``count`` transcripts of 500 to 1500 bases; the first ``planted`` are DE, half up, half down."""
    rng = random.Random(seed)
    sequences = {f"TX{i:03d}": "".join(rng.choices(BASES, k=rng.randint(500, 1500))) for i in range(count)}
    abundance = {name: math.exp(rng.gauss(0.0, 0.8)) for name in sequences}
    names = list(sequences)
    changes = {name: fold if i % 2 == 0 else 1.0 / fold for i, name in enumerate(names[:planted])}
    return Transcriptome(sequences, abundance, changes)


def simulate_sample(
    transcriptome: Transcriptome,
    name: str,
    condition: str,
    out_dir: Path,
    *,
    reads: int = 4000,
    read_length: int = 75,
    seed: int = 0,
    noise: float = 0.1,
    error_rate: float = 0.002,
) -> Sample:
    """Write ``out_dir/<name>.fastq.gz`` and return the sample with its TPM truth."""
    rng = random.Random(f"{seed}:{name}")
    levels = {tx: level * math.exp(rng.gauss(0.0, noise)) for tx, level in transcriptome.expression(condition).items()}
    total = sum(levels.values())
    tpm = {tx: 1e6 * level / total for tx, level in levels.items()}
    # A read comes from a molecule in proportion to its abundance times its length.
    names = list(levels)
    weights = [levels[tx] * len(transcriptome.sequences[tx]) for tx in names]
    path = out_dir / f"{name}.fastq.gz"
    with gzip.open(path, "wt", encoding="ascii") as out:
        for index, tx in enumerate(rng.choices(names, weights=weights, k=reads)):
            sequence = _read(rng, transcriptome.sequences[tx], read_length, error_rate)
            quality = "".join("I" if rng.random() > 0.02 else "#" for _ in sequence)
            out.write(f"@{name}.{index} {tx}\n{sequence}\n+\n{quality}\n")
    return Sample(name, condition, path, tpm)


def _read(rng: random.Random, molecule: str, length: int, error_rate: float) -> str:
    # One fragment in ten is shorter than the read, so the adapter is read through.
    drawn = rng.randint(40, length - 5) if rng.random() < 0.1 else int(rng.gauss(200, 40))
    fragment_length = min(len(molecule), max(40, drawn))
    start = rng.randint(0, len(molecule) - fragment_length)
    fragment = molecule[start : start + fragment_length]
    if rng.random() < 0.5:
        fragment = _reverse_complement(fragment)
    read = (fragment + ADAPTER + "".join(rng.choices(BASES, k=length)))[:length]
    return "".join(rng.choice(BASES) if rng.random() < error_rate else base for base in read)


def _reverse_complement(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGT", "TGCA"))


def simulate_experiment(
    transcriptome: Transcriptome, out_dir: Path, per_condition: int = 3, reads: int = 4000
) -> list[Sample]:
    """``per_condition`` samples of condition A then as many of B, named ``A1``…, ``B1``…."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        simulate_sample(transcriptome, f"{condition}{i}", condition, out_dir, reads=reads)
        for condition in ("A", "B")
        for i in range(1, per_condition + 1)
    ]
