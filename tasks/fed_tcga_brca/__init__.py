"""Fed-TCGA-BRCA (FLamby): survival analysis on TCGA breast-cancer clinical data, six regions."""
