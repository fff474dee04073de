"""Deterministic synthetic sequencing data with known truth, for tests of real pipelines.

The building blocks (:func:`random_sequence`, :func:`reverse_complement`,
:func:`write_fasta`, :func:`write_fastq`, :func:`pair_reads`) are shared: a
transcriptome simulator can live in a module beside this one and import them.

:func:`make_genome` plants SNPs and short indels (homozygous and heterozygous)
into a random genome of a few tens of kilobases; :func:`simulate_pairs` samples
paired reads from its two haplotypes with a small error rate. Same seed, same
bytes.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BASES = "ACGT"
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def random_sequence(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(BASES) for _ in range(length))


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def write_fasta(path: Path, records: Iterable[tuple[str, str]], width: int = 60) -> Path:
    with path.open("w", encoding="ascii") as out:
        for name, sequence in records:
            out.write(f">{name}\n")
            out.writelines(sequence[i : i + width] + "\n" for i in range(0, len(sequence), width))
    return path


def write_fastq(path: Path, reads: Iterable[tuple[str, str]], quality: str = "I") -> Path:
    """Reads as (name, sequence), every base at one quality; ``.gz`` names are gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="ascii") as out:  # type: ignore[operator]
        for name, sequence in reads:
            out.write(f"@{name}\n{sequence}\n+\n{quality * len(sequence)}\n")
    return path


def mutate(rng: random.Random, sequence: str, rate: float) -> str:
    """Substitution errors at ``rate`` per base."""
    bases = list(sequence)
    for i in range(len(bases)):
        if rng.random() < rate:
            bases[i] = rng.choice([b for b in BASES if b != bases[i]])
    return "".join(bases)


def pair_reads(
    rng: random.Random, template: str, read_length: int, fragment_mean: int, fragment_sd: int, error_rate: float
) -> tuple[str, str]:
    """One read pair from a random fragment of ``template`` on a random strand (FR orientation)."""
    size = max(read_length, min(len(template), int(rng.gauss(fragment_mean, fragment_sd))))
    start = rng.randrange(0, len(template) - size + 1)
    fragment = template[start : start + size]
    if rng.random() < 0.5:
        fragment = reverse_complement(fragment)
    first = fragment[:read_length]
    second = reverse_complement(fragment)[:read_length]
    return mutate(rng, first, error_rate), mutate(rng, second, error_rate)


@dataclass(frozen=True)
class Variant:
    """A planted variant in VCF terms (1-based position, anchored indels)."""

    chrom: str
    pos: int
    ref: str
    alt: str
    heterozygous: bool

    @property
    def is_snp(self) -> bool:
        return len(self.ref) == 1 and len(self.alt) == 1


@dataclass
class Genome:
    """A reference, its variants, and the sample's two haplotypes per contig."""

    contigs: dict[str, str]
    variants: list[Variant]
    haplotypes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def snps(self) -> set[tuple[str, int, str, str]]:
        return {(v.chrom, v.pos, v.ref, v.alt) for v in self.variants if v.is_snp}


def make_genome(
    seed: int = 16,
    lengths: tuple[int, ...] = (24_000, 12_000),
    spacing: int = 400,
    indel_share: float = 0.2,
    het_share: float = 0.3,
) -> Genome:
    """A random genome with one variant about every ``spacing`` bases (SNPs, 1-3 bp indels)."""
    rng = random.Random(seed)
    contigs = {f"chr{i + 1}": random_sequence(rng, length) for i, length in enumerate(lengths)}
    variants: list[Variant] = []
    for chrom, sequence in contigs.items():
        for site in range(spacing, len(sequence) - spacing, spacing):
            pos0 = site + rng.randrange(-spacing // 4, spacing // 4)
            variants.append(_variant(rng, chrom, sequence, pos0, indel_share, rng.random() < het_share))
    genome = Genome(contigs, variants)
    for chrom, sequence in contigs.items():
        here = [v for v in variants if v.chrom == chrom]
        genome.haplotypes[chrom] = (_apply(sequence, here), _apply(sequence, [v for v in here if not v.heterozygous]))
    return genome


def _variant(rng: random.Random, chrom: str, sequence: str, pos0: int, indel_share: float, het: bool) -> Variant:
    ref = sequence[pos0]
    if rng.random() >= indel_share:
        return Variant(chrom, pos0 + 1, ref, rng.choice([b for b in BASES if b != ref]), het)
    size = rng.randint(1, 3)
    if rng.random() < 0.5:  # deletion of the `size` bases after the anchor
        return Variant(chrom, pos0 + 1, sequence[pos0 : pos0 + 1 + size], ref, het)
    return Variant(chrom, pos0 + 1, ref, ref + random_sequence(rng, size), het)


def _apply(sequence: str, variants: list[Variant]) -> str:
    parts, cursor = [], 0
    for v in sorted(variants, key=lambda v: v.pos):
        start = v.pos - 1
        parts += [sequence[cursor:start], v.alt]
        cursor = start + len(v.ref)
    parts.append(sequence[cursor:])
    return "".join(parts)


def simulate_pairs(
    genome: Genome,
    seed: int = 17,
    coverage: float = 30.0,
    read_length: int = 100,
    fragment_mean: int = 300,
    fragment_sd: int = 30,
    error_rate: float = 0.002,
) -> Iterator[tuple[str, str, str]]:
    """(name, read 1, read 2) pairs over both haplotypes of every contig, ``coverage``-fold."""
    rng = random.Random(seed)
    number = 0
    for chrom, haplotypes in genome.haplotypes.items():
        pairs = int(coverage * len(genome.contigs[chrom]) / (2 * read_length))
        for _ in range(pairs):
            first, second = pair_reads(
                rng, haplotypes[rng.randrange(2)], read_length, fragment_mean, fragment_sd, error_rate
            )
            number += 1
            yield f"synth_{number}", first, second


def write_sample(genome: Genome, folder: Path, name: str = "S1", **options: float) -> tuple[Path, Path]:
    """The sample's reads as ``<name>_R1.fastq.gz`` and ``<name>_R2.fastq.gz`` in ``folder``."""
    pairs = list(simulate_pairs(genome, **options))  # type: ignore[arg-type]
    r1 = write_fastq(folder / f"{name}_R1.fastq.gz", ((f"{n}/1", a) for n, a, _ in pairs))
    r2 = write_fastq(folder / f"{name}_R2.fastq.gz", ((f"{n}/2", b) for n, _, b in pairs))
    return r1, r2


def vcf_snps(text: str) -> set[tuple[str, int, str, str]]:
    """The SNPs of a VCF's text (multi-allelic sites split; indels and MNPs left out)."""
    found = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        chrom, pos, _, ref, alts = line.split("\t")[:5]
        for alt in alts.split(","):
            if len(ref) == 1 and len(alt) == 1 and alt in BASES:
                found.add((chrom, int(pos), ref, alt))
    return found


def recall_precision(
    called: set[tuple[str, int, str, str]], truth: set[tuple[str, int, str, str]]
) -> tuple[float, float]:
    hits = len(called & truth)
    return hits / len(truth) if truth else 1.0, hits / len(called) if called else 0.0
