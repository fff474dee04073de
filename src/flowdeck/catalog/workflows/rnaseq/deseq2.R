# DESeq2 over the samples of one request: condition B (the second level) against A.
#
# Usage: Rscript deseq2.R SAMPLES.tsv OUT_DIR [PADJ]
# SAMPLES.tsv has the columns sample, condition, quant (a quant.tsv of the
# per-sample workflow: Name, Length, TPM, NumReads). The reference level is the
# condition of the first sample. Writes OUT_DIR/deseq2_results.tsv (every
# transcript, padj ascending), OUT_DIR/deseq2_significant.tsv (padj < PADJ),
# OUT_DIR/normalized_counts.tsv, OUT_DIR/pca.png and OUT_DIR/ma.png.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript deseq2.R SAMPLES.tsv OUT_DIR [PADJ]")
padj_cut <- if (length(args) >= 3) as.numeric(args[[3]]) else 0.05
suppressPackageStartupMessages(library(DESeq2))

sheet <- read.delim(args[[1]], stringsAsFactors = FALSE, check.names = FALSE)
out <- args[[2]]
dir.create(out, showWarnings = FALSE, recursive = TRUE)

read_counts <- function(path) {
  table <- read.delim(path, stringsAsFactors = FALSE)
  setNames(round(table$NumReads), table$Name)
}
counts <- sapply(sheet$quant, read_counts)
colnames(counts) <- sheet$sample
storage.mode(counts) <- "integer"

levels <- unique(sheet$condition)
info <- data.frame(row.names = sheet$sample, condition = factor(sheet$condition, levels = levels))
dds <- DESeqDataSetFromMatrix(countData = counts, colData = info, design = ~condition)
dds <- DESeq(dds, quiet = TRUE)
res <- results(dds, contrast = c("condition", levels[[2]], levels[[1]]))

table <- data.frame(transcript = rownames(res), as.data.frame(res), check.names = FALSE)
table <- table[order(table$padj, na.last = TRUE), ]
write.table(table, file.path(out, "deseq2_results.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
significant <- table[!is.na(table$padj) & table$padj < padj_cut, ]
write.table(significant, file.path(out, "deseq2_significant.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
normalized <- data.frame(transcript = rownames(dds), counts(dds, normalized = TRUE), check.names = FALSE)
write.table(normalized, file.path(out, "normalized_counts.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)

# A few dozen transcripts are too few for vst()'s subsampling: transform them all.
transformed <- varianceStabilizingTransformation(dds, blind = TRUE)
png(file.path(out, "pca.png"), width = 800, height = 600, type = "cairo")
print(plotPCA(transformed, intgroup = "condition"))
invisible(dev.off())
png(file.path(out, "ma.png"), width = 800, height = 600, type = "cairo")
plotMA(res, alpha = padj_cut, main = sprintf("%s vs %s", levels[[2]], levels[[1]]))
invisible(dev.off())
cat(sprintf("%d of %d transcripts at padj < %g\n", nrow(significant), nrow(table), padj_cut))
