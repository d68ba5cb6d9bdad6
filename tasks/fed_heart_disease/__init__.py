"""FLamby's Fed-Heart-Disease: four hospitals of the UCI Heart Disease data."""
